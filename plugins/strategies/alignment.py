"""Feature alignment (DAN / Deep CORAL): supervised losses on both domains plus a distribution distance.

Loss per step: alpha * CE(target) + (1 - alpha) * CE(source) + lam * D(source features, target
features), where alpha (``target_share``, in [0.05, 0.95]) is the target's share of the
classification loss and ``lam`` the alignment strength (log scale, never scaled by a split's
size), the features are the penultimate outputs of the trained model, and D is multi-kernel
MMD² (DAN; Long et al., 2015) or CORAL (Deep CORAL; Sun & Saenko, 2016) from ``advisor.plugin``
(the SDK's kernels). The source CE uses matching class names (``source_for_target``). The
freeze range stops below the full depth: with every block frozen the features cannot move and
the alignment term would be off.

Batches that measure something: a distance between two batches of 8 is mostly noise (MMD² has
an SD equal to its mean there; CORAL is several times its full-sample value), so every step
aligns at least ``ALIGN_ROWS`` rows per domain (the engine's ``align_rows``: larger source
batches, the target side topped up with target rows, repeated when the target is smaller). The
MMD bandwidth is fixed once per fit by the median heuristic on the source model's cached
penultimate features of both domains (a seeded sample), not re-estimated on every batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from advisor_plugins.strategies._common import (
    DEFAULT_TARGET_SHARE,
    TARGET_SHARE_RANGE,
    base_params,
    source_for_target,
    source_info,
    suggest_base,
)

import advisor.plugin as sdk
from advisor.plugin import (
    Domain,
    FitResult,
    InputError,
    MetricResult,
    Needs,
    ReportFn,
    Risk,
    TransferTask,
    signal_value,
)

if TYPE_CHECKING:
    import optuna
    import torch

    from advisor.plugin import StepBatch

ALIGNMENT_LOSSES = ("mmd", "coral")
#: The fewest rows per domain in one alignment step.
ALIGN_ROWS = 32


def alignment_loss(kind: str, lam: float, bandwidth: float | None = None):  # -> Callable[[StepBatch], Tensor]
    """``lam * D(source, target)`` as an extra loss for the training engine.

    The target side pools the labelled batch, the unlabelled batch and the rows topping it up to
    ``ALIGN_ROWS``. ``bandwidth`` fixes the MMD kernel (``None``: the median heuristic per batch).
    """
    import torch

    if kind not in ALIGNMENT_LOSSES:
        raise ValueError(f"unknown alignment loss {kind!r}; known: {', '.join(ALIGNMENT_LOSSES)}")

    def extra(batch: StepBatch) -> torch.Tensor:
        fs = batch.source_features
        ft = torch.cat([f for f in (batch.target_features, batch.unlabeled_features, batch.extra_target_features)
                        if f is not None])
        if fs is None or len(fs) < 2 or len(ft) < 2:
            return ft.new_zeros(())
        if kind == "mmd":
            return lam * sdk.gaussian_mmd2(fs.float(), ft.float(), bandwidth=bandwidth)
        return lam * sdk.coral_distance(fs.float(), ft.float())

    return extra


def feature_bandwidth(task: TransferTask, source: Domain) -> float:
    """The MMD bandwidth of one fit: the median heuristic on the source model's cached features of the
    source and target rows (train and unlabelled), on a sample seeded by the task's seed."""
    import torch

    cache = task.cache if task.cache is not None else sdk.FeatureCache(device=task.device)
    domains = [source, task.target_train] + ([task.target_unlabeled] if task.target_unlabeled is not None else [])
    z = np.concatenate([cache.features(task.backbone, d) for d in domains])
    return sdk.median_sq_distance(torch.as_tensor(z), seed=task.seed)


class FeatureAlignment:
    """Train on labelled source and target while pulling their feature distributions together."""

    name = "feature_alignment"
    family = "feature"
    role = "transfer"
    description = ("Train on labelled source and target together plus an MMD or CORAL penalty "
                   "between their features (DAN / Deep CORAL).")
    needs = Needs(source_data=True)

    def freeze_range(self, task: TransferTask) -> tuple[int, int]:
        return 0, max(0, task.depth - 1)  # at least one block trains, or the features cannot align

    def default_params(self, task: TransferTask) -> dict[str, Any]:
        return {**base_params(task, lr=1e-3, freeze=max(0, task.depth - 2)), "lam": 0.3,
                "target_share": DEFAULT_TARGET_SHARE, "loss": "mmd"}

    def search_space(self, trial: optuna.Trial, task: TransferTask) -> dict[str, Any]:
        params = suggest_base(trial, task, lr=(1e-4, 1e-2), freeze=self.freeze_range(task))
        params["lam"] = trial.suggest_float("lam", 1e-2, 10.0, log=True)
        params["target_share"] = trial.suggest_float("target_share", *TARGET_SHARE_RANGE)
        params["loss"] = trial.suggest_categorical("loss", list(ALIGNMENT_LOSSES))
        return params

    def fit(self, task: TransferTask, params: dict[str, Any], report: ReportFn | None) -> FitResult:
        reason = task.unmet(self.needs)
        if reason is not None:
            raise InputError(f"{self.name} {reason}")
        source, source_head = source_for_target(task.source, task.classes)
        kind = str(params.get("loss", "mmd"))
        bandwidth = feature_bandwidth(task, source) if kind == "mmd" else None
        model = task.backbone.with_new_head(task.num_classes, seed=task.seed)
        info: dict[str, Any] = {"alignment": kind, **source_info(source, source_head)}
        if bandwidth is not None:
            info["mmd_bandwidth"] = bandwidth
        cfg = sdk.config_from_params(
            task, params, self, source=source, source_head_classes=source_head, unlabeled=task.target_unlabeled,
            extra_loss=alignment_loss(kind, float(params["lam"]), bandwidth), align_rows=ALIGN_ROWS, info=info,
        )
        return sdk.train(task, model, cfg, report)

    def risks(self, signals: dict[str, MetricResult], task: TransferTask) -> list[Risk]:
        out = []
        shift = signal_value(signals, "label_shift")
        if shift is not None and shift > 0.2:
            out.append(Risk("high" if shift > 0.4 else "medium",
                            f"the class proportions differ (label shift {shift:.2f}): aligning marginal "
                            "feature distributions then maps target samples onto the wrong classes"))
        pad = signal_value(signals, "pad")
        if pad is not None and pad > 1.8:
            out.append(Risk("medium", f"the domains are almost disjoint (proxy A-distance {pad:.2f}): "
                                      "forcing their features together can destroy class structure"))
        return out
