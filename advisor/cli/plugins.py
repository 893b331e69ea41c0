"""``advisor plugins``: every plugin, what it registers, and load failures."""

from __future__ import annotations

import click

from advisor.cli.common import console as make_console
from advisor.cli.common import print_json, registry


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
@click.option("--strict", is_flag=True, help="Exit non-zero when a plugin failed to load.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool, strict: bool) -> None:
    """List plugins, what they register, and load failures."""
    if strict:
        ctx.find_root().obj["strict"] = True
    reg = registry(ctx)
    if as_json:
        print_json(reg.to_json())
        return
    from rich.table import Table

    console = make_console()
    table = Table(title="Plugins")
    for col in ("plugin", "version", "source", "strategies", "metrics", "scenarios"):
        table.add_column(col)
    for p in reg.plugins:
        table.add_row(
            p.name, p.version, p.source,
            ", ".join(f"{s['name']} ({s['family']})" for s in p.strategies),
            ", ".join(f"{m['name']} ({m['kind']})" for m in p.metrics),
            ", ".join(s["name"] for s in p.scenarios),
        )
    console.print(table)
    for f in reg.failures:
        console.print(f"[red]failed[/red] {f.plugin} ({f.distribution or 'no distribution'}) "
                      f"at {f.stage}: {f.error}")
