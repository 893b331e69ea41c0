"""L2-SP (Li, Grandvalet & Davoine, ICML 2018): fine-tune while staying close to the source weights.

Loss = CE(target) + alpha/2 * ||w - w_source||^2 over the trained backbone blocks
+ beta/2 * ||head||^2 over the new head. alpha > 0 always (alpha = 0 is ``finetune``).
The freeze range stops below the full depth, where the backbone term would be off.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from advisor_plugins.strategies._common import base_params, distance_risk, suggest_base

import advisor.plugin as sdk
from advisor.plugin import FitResult, MetricResult, Needs, ReportFn, Risk, TransferTask, signal_value

if TYPE_CHECKING:
    import optuna

    from advisor.plugin import StepBatch


class L2SP:
    """Fine-tuning regularised towards the source weights (starting point)."""

    name = "l2sp"
    family = "model"
    role = "transfer"
    description = "Fine-tune with an L2 penalty pulling the backbone towards the source weights (L2-SP)."
    needs = Needs(source_model=True)

    def freeze_range(self, task: TransferTask) -> tuple[int, int]:
        return 0, max(0, task.depth - 1)  # at least one block trains, or the SP term would be off

    def default_params(self, task: TransferTask) -> dict[str, Any]:
        return {**base_params(task, lr=1e-3, freeze=max(0, task.depth - 2)), "alpha": 0.01, "beta": 0.01}

    def search_space(self, trial: optuna.Trial, task: TransferTask) -> dict[str, Any]:
        params = suggest_base(trial, task, lr=(1e-4, 1e-2), freeze=self.freeze_range(task))
        params["alpha"] = trial.suggest_float("alpha", 1e-4, 10.0, log=True)
        params["beta"] = trial.suggest_float("beta", 1e-5, 1e-1, log=True)
        return params

    def fit(self, task: TransferTask, params: dict[str, Any], report: ReportFn | None) -> FitResult:
        import torch

        alpha, beta = float(params["alpha"]), float(params["beta"])
        model = task.backbone.with_new_head(task.num_classes, seed=task.seed)
        cfg = sdk.config_from_params(task, params, self)  # the engine clamps the freeze depth
        trained = [p for b in model.blocks[cfg.freeze:] for p in b.parameters()]
        anchors = [p.detach().clone().to(task.device) for p in trained]

        def penalty(batch: StepBatch) -> torch.Tensor:
            sp = sum(((p - a) ** 2).sum() for p, a in zip(trained, anchors, strict=True))
            head = sum((p**2).sum() for n, p in batch.model.head.named_parameters() if "weight" in n)
            return 0.5 * alpha * sp + 0.5 * beta * head

        cfg.extra_loss = penalty
        result = sdk.train(task, model, cfg, report)
        with torch.no_grad():
            dist = sum(float(((p - a) ** 2).sum()) for p, a in zip(trained, anchors, strict=True))
        result.info["distance_to_source"] = dist**0.5
        return result

    def risks(self, signals: dict[str, MetricResult], task: TransferTask) -> list[Risk]:
        out = distance_risk(signals, "L2-SP keeps pulling the model towards a distant source's weights")
        logme = signal_value(signals, "logme")
        if logme is not None and logme < 0:
            out.append(Risk("medium", f"LogME = {logme:.2f} (< 0): the source features fit the target "
                                      "labels poorly, so staying close to them may hold the model back"))
        return out
