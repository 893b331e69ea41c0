"""The baselines every search runs: target_only, linear_probe and finetune.

On an ``mlp`` each also searches dropout and weight decay (``_common.suggest_regularization``);
``linear_probe`` always searches its weight decay (on a log scale, never off).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from advisor_plugins.strategies._common import base_params, distance_risk, suggest_base

import advisor.plugin as sdk
from advisor.plugin import FitResult, MetricResult, Needs, ReportFn, Risk, TransferTask, signal_value

if TYPE_CHECKING:
    import optuna


class TargetOnly:
    """Same architecture, random initialisation, trained on the target train split alone."""

    name = "target_only"
    family = "baseline"
    role = "reference"
    description = "Train the same architecture from scratch on the target only (no transfer)."
    needs = Needs()

    def freeze_range(self, task: TransferTask) -> tuple[int, int]:
        return 0, 0  # a random network: nothing to keep frozen

    def default_params(self, task: TransferTask) -> dict[str, Any]:
        return base_params(task, lr=1e-3, freeze=0)

    def search_space(self, trial: optuna.Trial, task: TransferTask) -> dict[str, Any]:
        return suggest_base(trial, task, lr=(1e-4, 1e-2), freeze=self.freeze_range(task))

    def fit(self, task: TransferTask, params: dict[str, Any], report: ReportFn | None) -> FitResult:
        model = sdk.build(task.backbone.spec, task.num_classes, seed=task.seed)
        for m in model.modules():  # data statistics, not source knowledge: take them from the target's few rows
            if isinstance(m, sdk.Standardize):  # median floor: +1.7 points on the Office 3-label tasks (set_stats)
                m.set_stats(sdk.as_tensor(task.target_train.X), scale_floor="median")
        return sdk.train(task, model, sdk.config_from_params(task, params, self), report)

    def risks(self, signals: dict[str, MetricResult], task: TransferTask) -> list[Risk]:
        return []


class LinearProbe:
    """Every block frozen (the cached penultimate features), a fresh linear head trained."""

    name = "linear_probe"
    family = "baseline"
    role = "probe"
    description = "Freeze the whole source backbone and train a new linear head on its features."
    needs = Needs(source_model=True)

    def freeze_range(self, task: TransferTask) -> tuple[int, int]:
        return task.depth, task.depth  # every block frozen: only the head learns

    def default_params(self, task: TransferTask) -> dict[str, Any]:
        return {**base_params(task, lr=1e-2, freeze=task.depth, weight_decay=False), "weight_decay": 1e-4}

    def search_space(self, trial: optuna.Trial, task: TransferTask) -> dict[str, Any]:
        params = suggest_base(trial, task, lr=(1e-3, 1e-1), freeze=self.freeze_range(task), weight_decay=False)
        params["weight_decay"] = trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)
        return params

    def fit(self, task: TransferTask, params: dict[str, Any], report: ReportFn | None) -> FitResult:
        model = task.backbone.with_new_head(task.num_classes, seed=task.seed)
        return sdk.train(task, model, sdk.config_from_params(task, params, self), report)

    def risks(self, signals: dict[str, MetricResult], task: TransferTask) -> list[Risk]:
        out = distance_risk(signals, "frozen source features may not separate the target classes")
        logme = signal_value(signals, "logme")
        if logme is not None and logme < 0:
            out.append(Risk("medium", f"LogME = {logme:.2f} (< 0): the frozen features explain the target "
                                      "labels poorly; a linear probe is likely weak"))
        return out


class Finetune:
    """Plain fine-tuning: a fresh head, ``blocks[freeze:]`` and the head trained on the target."""

    name = "finetune"
    family = "baseline"
    role = "transfer"
    description = "Fine-tune the source model with a new head, freezing the first `freeze` blocks."
    needs = Needs(source_model=True)

    def freeze_range(self, task: TransferTask) -> tuple[int, int]:
        return 0, task.depth

    def default_params(self, task: TransferTask) -> dict[str, Any]:
        return base_params(task, lr=1e-3, freeze=max(0, task.depth - 2))

    def search_space(self, trial: optuna.Trial, task: TransferTask) -> dict[str, Any]:
        return suggest_base(trial, task, lr=(1e-4, 1e-2), freeze=self.freeze_range(task))

    def fit(self, task: TransferTask, params: dict[str, Any], report: ReportFn | None) -> FitResult:
        model = task.backbone.with_new_head(task.num_classes, seed=task.seed)
        return sdk.train(task, model, sdk.config_from_params(task, params, self), report)

    def risks(self, signals: dict[str, MetricResult], task: TransferTask) -> list[Risk]:
        return distance_risk(signals, "the pretrained weights may start far from a good target model")
