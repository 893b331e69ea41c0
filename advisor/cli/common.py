"""Helpers shared by CLI commands: the registry, output streams and JSON printing."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from advisor.plugin.registry import Registry, get_registry


def registry(ctx: click.Context) -> Registry:
    """The plugin registry, strict when ``--strict`` was given; failures warned on stderr."""
    strict = bool(ctx.find_root().obj.get("strict"))
    reg = get_registry(strict=strict)
    return reg


def warn_plugin_failures(reg: Registry) -> None:
    for f in reg.failures:
        click.echo(f"advisor: warning: plugin {f.plugin!r} failed to {f.stage}: {f.error}",
                   err=True)


def print_json(doc: Any) -> None:
    """Write one JSON document to stdout (and nothing else)."""
    sys.stdout.write(json.dumps(doc, indent=2, default=_default) + "\n")
    sys.stdout.flush()


def _default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def console(stderr: bool = False) -> Any:
    """A rich console; at least 120 columns wide when output is not a terminal (logs, pipes)."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    c = Console(file=stream)
    if not c.is_terminal:
        c = Console(file=stream, width=max(120, c.width))
    return c
