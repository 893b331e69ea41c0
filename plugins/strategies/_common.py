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


#: The target's share alpha of the classification loss when a source term trains alongside.
TARGET_SHARE_RANGE = (0.05, 0.95)
DEFAULT_TARGET_SHARE = 0.5
#: Regularisation searched for every strategy that trains an ``mlp`` (feature tables): small
#: tables overfit, and logistic regression (strongly regularised) often beats an unregularised MLP.
WEIGHT_DECAY_RANGE = (1e-6, 1e-2)
DROPOUT_RANGE = (0.0, 0.5)


def batch_size(task: TransferTask) -> int:
    """The engine's default batch size (resolved lazily: strategy modules stay torch-free)."""
    return sdk.default_batch_size(task)


def trains_mlp(task: TransferTask) -> bool:
    """Whether the network a strategy trains is the table ``mlp`` (the one whose space adds regularisation)."""
    return task.backbone.spec.arch == "mlp"


def regularization_defaults(task: TransferTask, weight_decay: bool = True) -> dict[str, Any]:
    """Regularisation off for an ``mlp`` (weight decay 0, dropout 0: the default trial trains as before).

    ``weight_decay=False`` for a strategy that sets its own weight decay (``linear_probe``).
    """
    if not trains_mlp(task):
        return {}
    off: dict[str, Any] = {"dropout": 0.0}
    if weight_decay:
        off.update({"weight_decay_on": False, "weight_decay": 0.0})
    return off


def suggest_regularization(trial: optuna.Trial, task: TransferTask, weight_decay: bool = True) -> dict[str, Any]:
    """For an ``mlp``: dropout in ``DROPOUT_RANGE`` and weight decay on a log scale in ``WEIGHT_DECAY_RANGE``.

    A log scale cannot hold 0, and the default trial must be "off", so weight decay is a switch
    (``weight_decay_on``) plus its strength when on. Dropout is the engine's (``TrainConfig.dropout``):
    a fresh dropout on the penultimate features before the head at fit time, so a pretrained
    source mlp's weights keep their meaning and the exported network has no extra module.
    """
    if not trains_mlp(task):
        return {}
    out: dict[str, Any] = {"dropout": trial.suggest_float("dropout", *DROPOUT_RANGE)}
    if weight_decay:
        on = bool(trial.suggest_categorical("weight_decay_on", [False, True]))
        out["weight_decay_on"] = on
        out["weight_decay"] = trial.suggest_float("weight_decay", *WEIGHT_DECAY_RANGE, log=True) if on else 0.0
    return out


def base_params(task: TransferTask, lr: float, freeze: int, weight_decay: bool = True) -> dict[str, Any]:
    """``epochs`` (``task.max_epochs``), ``lr``, ``freeze``, the batch size every strategy has, and the
    regularisation (off) an ``mlp`` searches (``regularization_defaults``)."""
    return {"epochs": int(task.max_epochs), "lr": lr, "freeze": int(freeze),
            "batch_size": batch_size(task), **regularization_defaults(task, weight_decay)}


def suggest_base(trial: optuna.Trial, task: TransferTask, lr: tuple[float, float],
                 freeze: tuple[int, int], weight_decay: bool = True) -> dict[str, Any]:
    """Suggest ``lr`` (log scale), the freeze depth within ``freeze`` (the strategy's declared range)
    and, for an ``mlp``, its regularisation (``suggest_regularization``).

    A range of one depth is set, not suggested (nothing to search).
    """
    params = {"epochs": int(task.max_epochs), "batch_size": batch_size(task),
              "lr": trial.suggest_float("lr", lr[0], lr[1], log=True)}
    low, high = freeze
    params["freeze"] = trial.suggest_int("freeze", low, high) if low < high else low
    params.update(suggest_regularization(trial, task, weight_decay))
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
