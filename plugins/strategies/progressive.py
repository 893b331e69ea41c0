"""Progressive unfreezing with discriminative learning rates (ULMFiT; optional LP-FT warm-up).

Schedule: the first ``warmup`` epochs train the head only (a linear-probe warm-up, as in
LP-FT); then one more block is unfrozen every ``unfreeze_every`` epochs, from the top block
down, never below ``freeze`` (the lowest block that is ever unfrozen; the blocks under it
stay frozen and come from the cache). Block ``j`` learns at ``lr / factor**(depth - j)``, the
head at ``lr`` (ULMFiT's factor 2.6 by default).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from advisor_plugins.strategies._common import base_params, distance_risk, suggest_base

import advisor.plugin as sdk
from advisor.plugin import FitResult, MetricResult, Needs, ReportFn, Risk, TransferTask

if TYPE_CHECKING:
    import optuna

    from advisor.plugin import Backbone

ULMFIT_FACTOR = 2.6


def unfrozen_from(epoch: int, depth: int, freeze: int, warmup: int, every: int) -> int:
    """The lowest trainable block in ``epoch`` (1-based); ``depth`` means head only."""
    if epoch <= warmup:
        return depth
    steps = (epoch - warmup - 1) // max(1, every) + 1
    return max(freeze, depth - steps)


class ProgressiveUnfreezing:
    """Unfreeze blocks gradually from the top, lower blocks learning more slowly."""

    name = "progressive_unfreezing"
    family = "progressive"
    role = "transfer"
    description = ("Unfreeze blocks from the top down during training with discriminative learning "
                   "rates (ULMFiT), optionally after a linear-probe warm-up (LP-FT).")
    needs = Needs(source_model=True)

    def freeze_range(self, task: TransferTask) -> tuple[int, int]:
        return 0, max(0, task.depth - 1)  # at least one block is ever unfrozen

    def default_params(self, task: TransferTask) -> dict[str, Any]:
        return {**base_params(task, lr=3e-3, freeze=max(0, task.depth - 2)), "factor": ULMFIT_FACTOR, "warmup": 1,
                "unfreeze_every": 1}

    def search_space(self, trial: optuna.Trial, task: TransferTask) -> dict[str, Any]:
        params = suggest_base(trial, task, lr=(1e-4, 1e-2), freeze=self.freeze_range(task))
        params["factor"] = trial.suggest_float("factor", 1.5, 4.0)
        params["warmup"] = trial.suggest_int("warmup", 0, 3)
        params["unfreeze_every"] = trial.suggest_int("unfreeze_every", 1, 3)
        return params

    def fit(self, task: TransferTask, params: dict[str, Any], report: ReportFn | None) -> FitResult:
        depth = task.depth
        factor = float(params.get("factor", ULMFIT_FACTOR))
        warmup, every = int(params.get("warmup", 0)), int(params.get("unfreeze_every", 1))
        lr = float(params["lr"])
        model = task.backbone.with_new_head(task.num_classes, seed=task.seed)

        def groups(m: Backbone, k: int) -> list[dict[str, Any]]:
            out = [{"params": list(m.head.parameters()), "lr": lr}]
            for j in range(k, depth):
                ps = list(m.blocks[j].parameters())
                if ps:
                    out.append({"params": ps, "lr": lr / factor ** (depth - j)})
            return out

        cfg = sdk.config_from_params(task, params, self, param_groups=groups,
                                     info={"factor": factor, "warmup": warmup, "unfreeze_every": every})
        freeze = cfg.freeze  # clamped by the engine into freeze_range

        def schedule(m: Backbone, epoch: int) -> None:
            lowest = unfrozen_from(epoch, depth, freeze, warmup, every)
            for j in range(freeze, depth):
                for p in m.blocks[j].parameters():
                    p.requires_grad_(j >= lowest)

        cfg.on_epoch_start = schedule
        return sdk.train(task, model, cfg, report)

    def risks(self, signals: dict[str, MetricResult], task: TransferTask) -> list[Risk]:
        return distance_risk(signals, "lower blocks unfrozen late may stay tuned to the source")
