"""``advisor report``: the report of an existing run, without search trials."""

from __future__ import annotations

from pathlib import Path

import click

from advisor.cli.common import console as make_console
from advisor.cli.common import print_json


@click.command("report")
@click.argument("run_dir", required=False, metavar="RUN_DIR")
@click.option("--storage", default=None, metavar="URL|JOURNAL_FILE",
              help="Recompute the report of --run from this storage (seed repeats and test verdict run here).")
@click.option("--run", "run_name", default=None, metavar="NAME", help="The run in --storage.")
@click.option("--device", default="auto", show_default=True, help="With --storage: auto, cpu or cuda[:i].")
@click.option("--threads", type=int, default=None, help="With --storage: torch threads in this process.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON report on stdout.")
@click.option("--export", default=None, metavar="FILE",
              help="Export the recommended model of a finished run (retrained on train+val here, no new trials).")
@click.pass_context
def report(ctx: click.Context, run_dir: str | None, storage: str | None, run_name: str | None, device: str,
           threads: int | None, as_json: bool, export: str | None) -> None:
    """Print the report of an existing run (no search trials).

    RUN_DIR prints the saved report. --storage URL --run NAME recomputes it on this machine from the
    task and model stored with the run, once every budget is spent.
    """

    from advisor.errors import InputError
    from advisor.report.render import print_report
    from advisor.runs.reopen import load_run_report

    console = make_console(stderr=as_json)
    if export:
        from advisor.runs.files import check_export_target

        check_export_target(export)  # before any retraining
    if export and run_name is None:
        if not run_dir:
            raise InputError("--export needs a run directory or --storage URL --run NAME")
        from advisor.runs.location import RunLocation

        # The run directory's recorded storage; a masked password comes from PGPASSWORD or ~/.pgpass,
        # or give --storage URL again.
        location = RunLocation.from_dir(run_dir, storage)
        storage, run_name = location.storage, location.run
    if storage is not None or run_name is not None:
        if not (storage and run_name):
            raise InputError("give both --storage URL and --run NAME")
        from advisor.cli.common import registry
        from advisor.report.render import public
        from advisor.runs.reopen import report_from_storage

        def on_event(kind: str, payload: dict) -> None:
            if kind == "repeat":
                console.print(f"seed repeats of {payload['strategy']}'s best setting")
            elif kind == "crossval":
                console.print(f"cross-validating {payload['strategy']} on train+val ({payload['folds']} folds)")
            elif kind == "final":
                from advisor.report.render import retrain_line

                console.print(retrain_line(payload))

        doc = report_from_storage(storage, run_name, device=device, threads=threads, run_dir=run_dir,
                                  registry=registry(ctx), on_event=on_event)
        if export:
            from advisor.report.export import export_recommendation

            doc["export"] = str(export_recommendation(doc, export))
            console.print(f"exported the recommended model to {doc['export']}")
        if as_json:
            print_json(public(doc))
        else:
            print_report(doc, console)
        return
    if not run_dir:
        raise InputError("give a run directory (see `advisor recommend --run-dir`) or --storage URL --run NAME")
    doc = load_run_report(Path(run_dir))
    for line in doc.get("unfinished", []):
        console.print(f"[yellow]unfinished:[/yellow] {line}")
    if as_json:
        print_json(doc)
    else:
        print_report(doc, console)
