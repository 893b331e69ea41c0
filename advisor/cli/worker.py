"""``advisor worker``: join a run's search from another process or machine."""

from __future__ import annotations

from typing import Any

import click

from advisor.cli.common import print_json, registry, warn_plugin_failures


@click.command("worker")
@click.option("--storage", required=True, metavar="URL|JOURNAL_FILE",
              help="The run's Optuna storage (postgresql://... or a journal file on this machine).")
@click.option("--run", "run_name", required=True, metavar="NAME", help="The run to join (recommend's --run).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:i].")
@click.option("--threads", type=int, default=None, help="Torch threads in this process.")
@click.option("--wait", type=float, default=300.0, show_default=True, metavar="SECONDS",
              help="How long to wait for the run to be created.")
@click.option("--run-dir", default=None, metavar="DIR", help="Local folder for the feature cache "
              "(default ./advisor-runs/<run>).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout.")
@click.pass_context
def worker(ctx: click.Context, storage: str, run_name: str, device: str, threads: int | None, wait: float,
           run_dir: str | None, as_json: bool) -> None:
    """Join a run's search; exits 0 once every budget of the run is spent."""
    from dataclasses import asdict

    from advisor.runs.worker import run_worker

    reg = registry(ctx)
    warn_plugin_failures(reg)

    def on_event(kind: str, payload: dict[str, Any]) -> None:
        if kind == "inputs":
            for line in payload["lines"]:
                click.echo(line, err=True)
        elif kind == "trial":
            value = "-" if payload["value"] is None else f"{payload['value']:.3f}"
            click.echo(f"{payload['strategy']} #{payload['number']} {payload['state'].lower()} {value}", err=True)

    result = run_worker(storage, run_name, device=device, threads=threads, wait=wait, run_dir=run_dir,
                        registry=reg, on_event=on_event)
    if as_json:
        print_json(asdict(result))
    if not result.complete:
        from advisor.errors import AdvisorFailure

        raise AdvisorFailure(f"run {result.run!r} still has open budgets: a strategy failed 3 times in a row on "
                             f"worker {result.worker} (see its trials' error attribute)")
    if not as_json:
        click.echo(f"worker {result.worker} on {result.device}: {result.trials} trials finished here "
                   f"({result.failed} failed) in {result.elapsed_s:.1f} s; every budget of run {result.run!r} is spent")
