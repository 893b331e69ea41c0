"""``advisor recommend``: quick advice, search, verdict, report."""

from __future__ import annotations

from typing import Any

import click

from advisor.cli.common import console as make_console
from advisor.cli.common import print_json, registry, warn_plugin_failures
from advisor.cli.options import input_options
from advisor.data.domain import DEFAULT_TEST_FRACTION, DEFAULT_VAL_FRACTION
from advisor.search.scoring import SCORES


@click.command("recommend")
@input_options
@click.option("--strategies", default=None, metavar="a,b", help="Only these strategies (baselines always run).")
@click.option("--trials", type=int, default=None,
              help="Finished trials per strategy (default 6 for a new run; 0: quick advice only).")
@click.option("--timeout", type=float, default=None, metavar="SECONDS", help="Cap this invocation's wall time.")
@click.option("--score", type=click.Choice(SCORES), default="accuracy", show_default=True)
@click.option("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION, show_default=True)
@click.option("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION, show_default=True)
@click.option("--max-epochs", type=int, default=30, show_default=True, help="Epochs per trial at most.")
@click.option("--run-dir", default=None, metavar="DIR", help="Run directory (default ./advisor-runs/<name>).")
@click.option("--storage", default=None, metavar="URL|JOURNAL_FILE", help="Optuna storage (default: journal).")
@click.option("--run", "run_name", default=None, metavar="NAME", help="Run name (default <data>-<fingerprint>).")
@click.option("--threads", type=int, default=None, help="Torch threads in this process.")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON report on stdout.")
@click.option("--export", default=None, metavar="FILE", help="Export the recommended model to FILE.")
@click.option("--meta-store", default=None, metavar="PATH|URL|none",
              help="Folder or database URL the finished run's record is appended to, for `advisor advice fit` "
                   "(default: the --storage database when it is a URL, else transfer-advisor/meta in the user "
                   "cache; none: keep no record).")
@click.pass_context
def recommend(ctx: click.Context, as_json: bool, **kw: Any) -> None:
    """Score transfer strategies on your data and recommend one."""

    from advisor.errors import InputError
    from advisor.models.inputs import InputRequest
    from advisor.pipeline import RecommendOptions
    from advisor.pipeline import recommend as run_recommend
    from advisor.report.render import print_advice, print_report

    if kw["demo"] is None and kw["target"] is None:
        raise InputError("give --target PATH (with --source PATH and/or --model) or --demo [SCENARIO]")
    if kw["demo"] is not None and (kw["target"] or kw["source"]):
        raise InputError("--demo cannot be combined with --source/--target")
    reg = registry(ctx)
    warn_plugin_failures(reg)
    request = InputRequest(
        source=kw["source"], target=kw["target"], target_unlabeled=kw["target_unlabeled"], demo=kw["demo"],
        label_column=kw["label_column"], model=kw["model"], weights=kw["weights"],
        image_size=kw["image_size"], val_fraction=kw["val_fraction"], test_fraction=kw["test_fraction"],
        seed=kw["seed"], device=kw["device"],
    )
    options = RecommendOptions(
        strategies=kw["strategies"], trials=kw["trials"], timeout=kw["timeout"], score=kw["score"],
        run_dir=kw["run_dir"], storage=kw["storage"], run_name=kw["run_name"], max_epochs=kw["max_epochs"],
        threads=kw["threads"], export=kw["export"], meta_store=kw["meta_store"],
    )
    console = make_console(stderr=as_json)
    progress = _Progress(console)

    def on_event(kind: str, payload: dict[str, Any]) -> None:
        if kind == "inputs":
            for line in payload["lines"]:
                console.print(line)
        elif kind == "run":
            console.print(f"run {payload['run']} in {payload['dir']} (storage {payload['storage']})")
        elif kind == "advice":
            print_advice(payload["advice"], payload["not_applicable"], console)
        else:
            progress.event(kind, payload)

    try:
        doc = run_recommend(request, options, reg, on_event)
    finally:
        progress.stop()
    if options.export and doc.get("recommendation"):
        from advisor.report.export import export_recommendation

        path = export_recommendation(doc, options.export)
        doc["export"] = str(path)
        console.print(f"exported the recommended model to {path}")
    if as_json:
        from advisor.report.render import public

        print_json(public(doc))
    else:
        print_report(doc, console, show_advice=False)


class _Progress:
    """A rich progress bar over the search's trials (on the report's console)."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.bar: Any = None
        self.task: Any = None

    def event(self, kind: str, payload: dict[str, Any]) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        if kind == "search_start":
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task("search", total=payload["total"], completed=payload["done"])
        elif kind == "trial" and self.bar is not None:
            if payload["state"] in ("COMPLETE", "PRUNED"):
                self.bar.advance(self.task)
            value = "-" if payload["value"] is None else f"{payload['value']:.3f}"
            self.bar.update(self.task, description=f"{payload['strategy']} #{payload['number']} {value}")
        elif kind == "search_end":
            self.stop()
        elif kind == "repeat":
            self.console.print(f"seed repeats of {payload['strategy']}'s best setting")
        elif kind == "crossval":
            self.console.print(f"cross-validating {payload['strategy']} on train+val ({payload['folds']} folds)")
        elif kind == "final":
            from advisor.report.render import retrain_line

            self.console.print(retrain_line(payload))

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
