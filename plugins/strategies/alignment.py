"""Feature alignment (DAN / Deep CORAL): supervised losses on both domains plus a distribution distance.

Loss per step: CE(target) + mu * CE(source) + lam * D(source features, target features), where
the features are the penultimate outputs of the trained model, the target side pools the
labelled batch with an unlabelled batch when unlabelled target data is given, and D is
multi-kernel MMD² (DAN; Long et al., 2015) or CORAL (Deep CORAL; Sun & Saenko, 2016) from
``advisor.plugin`` (the SDK's kernels). The source CE uses matching class names
(``source_for_target``). The freeze range stops below the full depth: with every block frozen the
features cannot move and the alignment term would be off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from advisor_plugins.strategies._common import base_params, source_for_target, source_info, suggest_base

import advisor.plugin as sdk
from advisor.plugin import FitResult, InputError, MetricResult, Needs, ReportFn, Risk, TransferTask, signal_value

if TYPE_CHECKING:
    import optuna
    import torch

    from advisor.plugin import StepBatch

ALIGNMENT_LOSSES = ("mmd", "coral")


def alignment_loss(kind: str, lam: float):  # -> Callable[[StepBatch], torch.Tensor]
    """``lam * D(source, target)`` as an extra loss for the training engine."""
    import torch

    if kind not in ALIGNMENT_LOSSES:
        raise ValueError(f"unknown alignment loss {kind!r}; known: {', '.join(ALIGNMENT_LOSSES)}")
    distance = sdk.gaussian_mmd2 if kind == "mmd" else sdk.coral_distance

    def extra(batch: StepBatch) -> torch.Tensor:
        fs = batch.source_features
        ft = batch.target_features
        if batch.unlabeled_features is not None:
            ft = torch.cat([ft, batch.unlabeled_features])
        if fs is None or len(fs) < 2 or len(ft) < 2:
            return ft.new_zeros(())
        return lam * distance(fs.float(), ft.float())

    return extra


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
                "source_weight": 1.0, "loss": "mmd"}

    def search_space(self, trial: optuna.Trial, task: TransferTask) -> dict[str, Any]:
        params = suggest_base(trial, task, lr=(1e-4, 1e-2), freeze=self.freeze_range(task))
        params["lam"] = trial.suggest_float("lam", 1e-2, 10.0, log=True)
        params["source_weight"] = trial.suggest_float("source_weight", 0.1, 10.0, log=True)
        params["loss"] = trial.suggest_categorical("loss", list(ALIGNMENT_LOSSES))
        return params

    def fit(self, task: TransferTask, params: dict[str, Any], report: ReportFn | None) -> FitResult:
        reason = task.unmet(self.needs)
        if reason is not None:
            raise InputError(f"{self.name} {reason}")
        source, source_head = source_for_target(task.source, task.classes)
        model = task.backbone.with_new_head(task.num_classes, seed=task.seed)
        cfg = sdk.config_from_params(
            task, params, self, source=source,
            source_loss_weight=float(params.get("source_weight", 1.0)), source_head_classes=source_head,
            unlabeled=task.target_unlabeled,
            extra_loss=alignment_loss(str(params.get("loss", "mmd")), float(params["lam"])),
            info={"alignment": params.get("loss", "mmd"), **source_info(source, source_head)},
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
