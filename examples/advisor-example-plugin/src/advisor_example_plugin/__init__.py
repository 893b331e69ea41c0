"""A minimal Transfer Advisor plugin: a similarity metric and a strategy, a template to copy.

- ``centroid_gap`` (metric): distance between the source and target feature means, in units
  of the pooled feature standard deviation; lower means more similar. Its evidence kind is
  ``distribution_shift`` (a statistic with no fixed scale): shown in reports, not read by the advice.
- ``head_only`` (strategy): a probe that trains a fresh linear head on the source model's frozen
  features, through the advisor's own training engine (so it gets caching, reporting and pruning
  for free). It needs a source model (without one the backbone would be random), declares the only
  freeze depth it is meant for, and is an optional strategy (family ``model``), not a baseline that
  every search would be forced to run.

Everything comes from ``advisor.plugin``, the one module a plugin imports from the advisor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.plugin import (
    FitResult,
    MetricInputs,
    MetricRegister,
    MetricResult,
    Needs,
    ReportFn,
    Risk,
    StrategyRegister,
    TransferTask,
    hookimpl,
    signal_value,
)

if TYPE_CHECKING:
    import optuna

__version__ = "0.1.0"


class CentroidGap:
    """Distance between the domain means, in pooled standard deviations."""

    name = "centroid_gap"
    kind = "similarity"
    evidence = "distribution_shift"
    description = "Distance between source and target feature means, in pooled standard deviations."
    needs = Needs(source_data=True)

    def compute(self, inputs: MetricInputs) -> MetricResult:
        xs, xt = inputs.source_features, inputs.target_features
        pooled = np.concatenate([xs, xt]).std(0).mean() + 1e-12
        gap = float(np.linalg.norm(xs.mean(0) - xt.mean(0)) / pooled)
        return MetricResult(
            value=gap,
            higher_is_better=False,
            interpretation=f"the domain means are {gap:.2f} pooled standard deviations apart",
        )


class HeadOnly:
    """A fresh linear head on the frozen source backbone (every block frozen)."""

    name = "head_only"
    family = "model"  # reuses the source model's parameters
    role = "probe"  # reads the frozen source features
    description = "A fresh linear head on frozen source features (example plugin)."
    needs = Needs(source_model=True)

    def freeze_range(self, task: TransferTask) -> tuple[int, int]:
        return task.depth, task.depth  # the engine clamps params["freeze"] into this range

    def default_params(self, task: TransferTask) -> dict[str, Any]:
        return {"lr": 1e-2, "weight_decay": 1e-4}

    def search_space(self, trial: optuna.Trial, task: TransferTask) -> dict[str, Any]:
        return {"lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True),
                "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True)}

    def fit(self, task: TransferTask, params: dict[str, Any], report: ReportFn | None) -> FitResult:
        from advisor.plugin import config_from_params, train  # the engine loads torch: import it here

        model = task.backbone.with_new_head(task.num_classes, seed=task.seed)
        return train(task, model, config_from_params(task, params, self), report)

    def risks(self, signals: dict[str, MetricResult], task: TransferTask) -> list[Risk]:
        gap = signal_value(signals, "centroid_gap")  # this plugin's own metric, read by name
        if gap is not None and gap > 3.0:
            return [Risk("medium", f"the domain means are {gap:.1f} standard deviations apart: frozen "
                                   "source features may not fit the target")]
        return []


@hookimpl
def advisor_register_metrics(register: MetricRegister) -> None:
    register(CentroidGap())


@hookimpl
def advisor_register_strategies(register: StrategyRegister) -> None:
    register(HeadOnly())
