"""A minimal Transfer Advisor plugin: a similarity metric and a strategy.

- ``centroid_gap`` (metric): distance between the source and target feature means, in units
  of the pooled feature standard deviation; lower means more similar.
- ``head_only`` (strategy): trains a fresh linear head on frozen features, using the
  advisor's own training engine (so it gets caching, reporting and pruning for free).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from advisor import hookimpl
from advisor.plugin.contracts import MetricInputs, MetricResult, Needs


class CentroidGap:
    name = "centroid_gap"
    kind = "similarity"
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
    name = "head_only"
    family = "baseline"
    role = "probe"
    description = "A fresh linear head on frozen source features (example plugin)."
    needs = Needs()

    def default_params(self, task: Any) -> dict[str, Any]:
        return {"lr": 1e-2}

    def search_space(self, trial: Any, task: Any) -> dict[str, Any]:
        return {"lr": trial.suggest_float("lr", 1e-3, 1e-1, log=True)}

    def fit(self, task: Any, params: dict[str, Any], report: Any) -> Any:
        from advisor.search.training import config_from_params, train

        model = task.backbone.with_new_head(task.num_classes, seed=task.seed)
        config = config_from_params(task, {**params, "freeze": task.depth}, self.name)
        return train(task, model, config, report)

    def risks(self, signals: dict[str, MetricResult], task: Any) -> list:
        return []


@hookimpl
def advisor_register_metrics(register):
    register(CentroidGap())


@hookimpl
def advisor_register_strategies(register):
    register(HeadOnly())
