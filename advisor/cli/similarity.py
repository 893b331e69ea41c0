"""``advisor similarity``: every applicable metric with its interpretation, without training a target."""

from __future__ import annotations

from typing import Any

import click

from advisor.cli.common import console as make_console
from advisor.cli.common import print_json, registry, warn_plugin_failures
from advisor.cli.options import input_options


@click.command("similarity")
@input_options
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON document on stdout.")
@click.pass_context
def similarity(ctx: click.Context, as_json: bool, **kw: Any) -> None:
    """Domain-similarity and transferability metrics, without training.

    --model none computes the metrics on the stored features exactly as stored (feature tables),
    so LEEP, NCE and source_accuracy are then not applicable.
    """
    from advisor.errors import InputError

    if kw["demo"] is None and kw["target"] is None:
        raise InputError("give --source PATH --target PATH, or --demo [SCENARIO]")
    if kw["demo"] is not None and (kw["target"] or kw["source"]):
        raise InputError("--demo cannot be combined with --source/--target")
    doc = similarity_document(registry(ctx), kw)
    if as_json:
        print_json(doc)
    else:
        print_table(doc)


def similarity_document(reg: Any, kw: dict[str, Any]) -> dict[str, Any]:
    """Resolve the inputs, compute the signals and return the JSON document."""
    from advisor.device import resolve_device
    from advisor.metrics.signals import compute_signals, metric_inputs
    from advisor.models.inputs import InputRequest, resolve_inputs

    warn_plugin_failures(reg)
    device = resolve_device(kw["device"])
    request = InputRequest(
        source=kw["source"], target=kw["target"], target_unlabeled=kw["target_unlabeled"], demo=kw["demo"],
        label_column=kw["label_column"], model=kw["model"], weights=kw["weights"],
        image_size=kw["image_size"], seed=kw["seed"], device=device,
    )
    resolved = resolve_inputs(request, reg)
    inputs = metric_inputs(resolved.source, resolved.splits.train, resolved.splits.val,
                           resolved.target_unlabeled, resolved.backbone, None, device, kw["seed"])
    signals = compute_signals(reg, inputs)
    doc = signals.to_json()
    doc["model"] = resolved.model_note
    doc["target_rows"] = int(len(inputs.target_features))  # train + validation, never test
    if resolved.scenario:
        doc["scenario"] = resolved.scenario
    return doc


def print_table(doc: dict[str, Any]) -> None:
    """The document as a rich table on stdout, then what did not run and why."""
    from rich.table import Table

    console = make_console()
    console.print(f"model: {doc.get('model', '')}; target rows (train + validation): {doc['target_rows']}")
    table = Table(title="Similarity and transferability")
    for col in ("metric", "value", "p-value", "better", "interpretation"):
        table.add_column(col, overflow="fold")
    for name, m in doc["metrics"].items():
        p = "" if m["p_value"] is None else f"{m['p_value']:.3g}"
        better = "higher" if m["direction"] == "higher_is_better" else "lower"
        table.add_row(name, f"{m['value']:.4g}", p, better, m["interpretation"])
    console.print(table)
    for name, reason in doc["not_applicable"].items():
        console.print(f"not applicable: {name}: {reason}")
    for name, error in doc["errors"].items():
        console.print(f"[red]error[/red]: {name}: {error}")
