"""``advisor predict``: classify new data with an exported model."""

from __future__ import annotations

from typing import Any

import click

from advisor.cli.common import console as make_console
from advisor.cli.common import print_json


@click.command("predict")
@click.argument("exported_model", metavar="EXPORTED_MODEL")
@click.argument("input_path", metavar="INPUT")
@click.option("--top-k", type=int, default=1, show_default=True, help="Classes to show per sample.")
@click.option("--label-column", default="label", show_default=True, help="Label column of a .csv input.")
@click.option("--device", default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def predict(exported_model: str, input_path: str, top_k: int, label_column: str, device: str,
            as_json: bool) -> None:
    """Classify new data of the same kind as the model was trained on."""
    from advisor.device import resolve_device
    from advisor.report.predict import predict_path

    result = predict_path(exported_model, input_path, top_k=top_k, label_column=label_column,
                          device=resolve_device(device))
    if as_json:
        print_json(result)
        return
    _print(result)


def _print(result: dict[str, Any]) -> None:
    from rich.table import Table

    console = make_console()
    t = Table(title=f"Predictions of {result['model']}")
    t.add_column("#")
    t.add_column("prediction")
    t.add_column("probability")
    if result.get("labels"):
        t.add_column("label")
    for i, p in enumerate(result["predictions"]):
        top = ", ".join(f"{c['class']} ({c['probability']:.3f})" for c in p["top"])
        row = [str(i), p["top"][0]["class"], top]
        if result.get("labels"):
            row.append(result["labels"][i])
        t.add_row(*row)
    console.print(t)
    if result.get("score") is not None:
        console.print(f"accuracy on the given labels: {result['score']:.4f} ({len(result['predictions'])} samples)")
