"""Options shared by commands that load inputs (recommend, similarity)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

#: What a bare ``--demo`` passes on: the registry's default scenario (the one its plugin marks ``default``).
DEFAULT_DEMO = ""


def input_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--demo [NAME]``, ``--source``, ``--target``, ``--target-unlabeled``, ``--label-column``,
    ``--model``, ``--weights``, ``--image-size``, ``--device``, ``--seed``."""
    opts = [
        click.option("--demo", is_flag=False, flag_value=DEFAULT_DEMO, default=None, metavar="[SCENARIO]",
                     help="Use a built-in scenario (default: the one its plugin marks as default); "
                          "see `advisor plugins`."),
        click.option("--source", type=str, default=None, metavar="PATH",
                     help="Labelled source data: image folder, .npz or .csv."),
        click.option("--target", type=str, default=None, metavar="PATH",
                     help="Labelled target data: image folder, .npz or .csv."),
        click.option("--target-unlabeled", type=str, default=None, metavar="PATH",
                     help="Optional unlabelled target data."),
        click.option("--label-column", default="label", show_default=True, help="Label column of .csv files."),
        click.option("--model", default=None, metavar="ARCH|CKPT|mlp|cnn",
                     help="Source model: a torchvision architecture, a checkpoint file, mlp or cnn "
                          "(default: mlp for tables, resnet18 for images)."),
        click.option("--weights", default=None, metavar="FILE", help="Weights file for a torchvision --model."),
        click.option("--image-size", type=int, default=None, help="Resize images to this square size."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:i]."),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed of splits and training."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func
