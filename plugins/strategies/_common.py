"""Helpers the built-in strategies share: common hyperparameters, source labels, distance risks.

Conflicting label semantics are not checked here: the quick advice applies the one rule
(``advisor.plugin.label_conflict``) to every strategy that trains on source labels.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

import advisor.plugin as sdk
from advisor.plugin import Domain, MetricResult, Risk, TransferTask, signal_value

if TYPE_CHECKING:
    import optuna


def batch_size(task: TransferTask) -> int:
    """The engine's default batch size (resolved lazily: strategy modules stay torch-free)."""
    return sdk.default_batch_size(task)


def base_params(task: TransferTask, lr: float, freeze: int) -> dict[str, Any]:
    """``epochs`` (``task.max_epochs``), ``lr``, ``freeze`` and the batch size every strategy has."""
    return {"epochs": int(task.max_epochs), "lr": lr, "freeze": int(freeze),
            "batch_size": batch_size(task)}


def suggest_base(trial: optuna.Trial, task: TransferTask, lr: tuple[float, float],
                 freeze: tuple[int, int]) -> dict[str, Any]:
    """Suggest ``lr`` (log scale) and the freeze depth within ``freeze`` (the strategy's declared range).

    A range of one depth is set, not suggested (nothing to search).
    """
    params = {"epochs": int(task.max_epochs), "batch_size": batch_size(task),
              "lr": trial.suggest_float("lr", lr[0], lr[1], log=True)}
    low, high = freeze
    params["freeze"] = trial.suggest_int("freeze", low, high) if low < high else low
    return params


def source_for_target(source: Domain, target_classes: tuple[str, ...]) -> tuple[Domain, int]:
    """The source rows to train a source term on, and the separate source head size (0: shared).

    Rule (documented in the README): source rows whose class *name* is also a target class
    are relabelled to the target's class ids and share the target head; other rows are
    dropped. Same names are taken to mean the same classes, so a source whose labels are
    permuted relative to the target's (same names, other meaning) pulls the head the wrong
    way, which is negative transfer the advisor must be able to see. When no name matches,
    every source row is kept with a separate source head (the source term then shapes only
    the shared blocks).
    """
    if source.y is None:
        raise ValueError("source_for_target needs labelled source data")
    index = {name: i for i, name in enumerate(target_classes)}
    mapping = np.array([index.get(name, -1) for name in source.classes])
    mapped = mapping[source.y]
    keep = np.flatnonzero(mapped >= 0)
    if len(keep) == 0:
        return source, source.num_classes
    sub = source.subset(keep, f"{source.name}/shared-classes")
    relabelled = Domain(sub.name, sub.X, mapped[keep].astype(np.int64), target_classes, sub.kind, sub.origin)
    return relabelled, 0


def source_info(source: Domain, source_head: int) -> dict[str, Any]:
    """What a fit reports about its source term (rows used, shared or separate head)."""
    return {"source_rows": len(source),
            "source_head": "separate" if source_head else "shared (matching class names)"}


def distance_risk(signals: dict[str, MetricResult], what: str) -> list[Risk]:
    """A risk when the domains are far apart (proxy A-distance in [0, 2], or a significant MMD)."""
    out = []
    pad = signal_value(signals, "pad")
    if pad is not None and pad > 1.5:
        # Deep features separate almost any two domains (PAD near 2 is common even when
        # transfer helps), so distance alone is a medium risk; evidence of harm is the NTG.
        out.append(Risk("medium",
                        f"the domains are far apart (proxy A-distance {pad:.2f} of at most 2): {what}"))
    mmd = signals.get("mmd")
    if mmd is not None and mmd.p_value is not None and mmd.p_value < 0.01 and pad is None:
        out.append(Risk("medium", f"the feature distributions differ (MMD² = {mmd.value:.3g}, "
                                  f"p = {mmd.p_value:.2g}): {what}"))
    return out
