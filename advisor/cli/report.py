"""``advisor report``: the report of an existing run, without training."""

from __future__ import annotations

from pathlib import Path

import click

from advisor.cli.common import console as make_console
from advisor.cli.common import print_json


@click.command("report")
@click.argument("run_dir", required=False, metavar="RUN_DIR")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON report on stdout.")
def report(run_dir: str | None, as_json: bool) -> None:
    """Print the report of an existing run (no trials, no training)."""

    from advisor.errors import InputError
    from advisor.report import print_report
    from advisor.runreport import load_run_report

    if not run_dir:
        raise InputError("give a run directory (see `advisor recommend --run-dir`)")
    doc = load_run_report(Path(run_dir))
    console = make_console(stderr=as_json)
    for line in doc.get("unfinished", []):
        console.print(f"[yellow]unfinished:[/yellow] {line}")
    if as_json:
        print_json(doc)
    else:
        print_report(doc, console)
