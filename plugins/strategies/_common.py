"""Helpers the built-in strategies share: common hyperparameters, source labels, signal reading."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.data.domain import Domain
from advisor.plugin.contracts import MetricResult, Risk, TransferTask

if TYPE_CHECKING:
    import optuna


def batch_size(task: TransferTask) -> int:
    """The engine's default batch size (imported lazily: strategy modules stay torch-free)."""
    from advisor.search.training import default_batch_size

    return default_batch_size(task)


def base_params(task: TransferTask, lr: float, freeze: int) -> dict[str, Any]:
    """``epochs`` (``task.max_epochs``), ``lr``, ``freeze`` and the batch size every strategy has."""
    return {"epochs": int(task.max_epochs), "lr": lr, "freeze": int(freeze),
            "batch_size": batch_size(task)}


def suggest_base(trial: optuna.Trial, task: TransferTask, lr: tuple[float, float],
                 freeze: tuple[int, int] | None) -> dict[str, Any]:
    """Suggest ``lr`` (log scale) and, when a range is given, the freeze depth (integer)."""
    params = {"epochs": int(task.max_epochs), "batch_size": batch_size(task),
              "lr": trial.suggest_float("lr", lr[0], lr[1], log=True)}
    params["freeze"] = trial.suggest_int("freeze", freeze[0], freeze[1]) if freeze else 0
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


def value(signals: dict[str, MetricResult], name: str) -> float | None:
    """A signal's value, or ``None`` when it is missing or not finite."""
    res = signals.get(name)
    if res is None or res.value is None or not math.isfinite(float(res.value)):
        return None
    return float(res.value)


def conflicting_labels_risk(signals: dict[str, MetricResult], task: TransferTask) -> list[Risk]:
    """High LEEP/NCE (source predictions informative) with low source accuracy: same names, other meaning.

    LEEP and NCE are log-likelihoods (<= 0); "informative" means at least halfway from the
    uniform guess ``log(1/C)`` to 0.
    """
    acc = value(signals, "source_accuracy")
    if acc is None:
        return []
    c = max(task.num_classes, 2)
    uniform = math.log(1.0 / c)
    cited = [(n, v) for n in ("leep", "nce") if (v := value(signals, n)) is not None and v > 0.5 * uniform]
    if acc < max(0.3, 2.0 / c) and cited:
        shown = ", ".join(f"{n.upper()} = {v:.2f}" for n, v in cited)
        return [Risk("high", f"source predictions are informative ({shown}, uniform guess {uniform:.2f}) "
                             f"but the source head's accuracy on the target is only {acc:.2f}: the "
                             "class names likely mean different things; training on source labels "
                             "would teach the wrong classes")]
    return []


def distance_risk(signals: dict[str, MetricResult], what: str) -> list[Risk]:
    """A risk when the domains are far apart (proxy A-distance in [0, 2], or a significant MMD)."""
    out = []
    pad = value(signals, "pad")
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
