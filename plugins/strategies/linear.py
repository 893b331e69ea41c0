"""Linear models on the raw inputs: the simple learners a transfer strategy must beat.

- ``target_linear`` (a reference): multinomial logistic regression on the target's raw inputs
  (tables: the features; images: pixels pooled to at most 32x32), its L2 strength searched,
  fitted to convergence with L-BFGS. On small SURF-style tables it is often the strongest
  target-only learner; a reference weaker than it makes every transfer look good.
- ``pooled_linear`` (instance-based transfer in its simplest form): the same model fitted on
  source and target rows together, the target's share ``target_share`` (alpha) of the loss searched.

The inputs are standardised with the statistics of the rows the model is fitted on, no column scaled by
less than the median column's deviation (``Standardize.set_stats``). Both are strictly convex and start
from the same weights whatever the task's seed, so a fit does not depend on the seed at all
(``deterministic = True``: the advisor fits a setting once instead of once per seed; measured before the
fixed start, five seeds' converged fits disagreed on 0-2 of 100 validation rows). The loss is the mean
cross-entropy
of each domain plus ``l2 / 2 * ||W||^2``: a setting means the same on any split size (the search,
the seed repeats and the retrain on train+val).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from advisor_plugins.strategies._common import TARGET_SHARE_RANGE, distance_risk, source_for_target

import advisor.plugin as sdk
from advisor.plugin import FitResult, InputError, MetricResult, Needs, ReportFn, Risk, TrainingDiverged, TransferTask

if TYPE_CHECKING:
    import optuna
    import torch

#: L-BFGS iterations: enough to converge on a few thousand standardised columns.
MAX_ITER = 300
L2_RANGE = (1e-4, 1.0)


#: The seed of the linear head's starting weights: fixed, so that the fit is the same for every task seed.
START_SEED = 0


def _linear_model(task: TransferTask) -> Any:
    spec = task.backbone.spec
    return sdk.build(sdk.ModelSpec("linear", spec.input_kind, tuple(spec.input_shape)), task.num_classes,
                     seed=START_SEED)


def _inputs(model: Any, X: np.ndarray, device: str, batch: int = 256) -> torch.Tensor:
    """The raw-input block's vector for ``X`` (before standardisation), converted a batch at a time.

    Images are stored as uint8; only one batch at a time becomes float before it is pooled to at
    most 32x32, so a folder of large photos never exists as one float array.
    """
    import torch

    raw = model.blocks[0][0]
    out = []
    with torch.no_grad():
        for i in range(0, len(X), batch):
            x = sdk.to_float(torch.from_numpy(np.ascontiguousarray(X[i:i + batch])).to(device))
            out.append(raw(x).float())
    return torch.cat(out) if out else torch.zeros(0, model.feature_dim, device=device)


def fit_linear(task: TransferTask, params: dict[str, Any], report: ReportFn | None,
               source: Any = None) -> FitResult:
    """Fit the linear model on the target rows (and ``source`` rows, weighted by ``1 - alpha``)."""
    import torch
    import torch.nn.functional as F

    device = task.device
    model = _linear_model(task).to(device)
    zt = _inputs(model, task.target_train.X, device)
    yt = torch.as_tensor(task.target_train.y, dtype=torch.long, device=device)
    rows = [zt]
    if source is not None:
        zs = _inputs(model, source.X, device)
        ys = torch.as_tensor(source.y, dtype=torch.long, device=device)
        rows.append(zs)
    standardize = model.blocks[0][1]
    standardize.set_stats(torch.cat(rows), scale_floor="median")  # few rows: see Standardize.set_stats
    with torch.no_grad():
        xt = standardize(zt)
        xs = standardize(zs) if source is not None else None
    head = model.head
    l2 = float(params["l2"])
    alpha = float(params.get("target_share", 1.0))
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=MAX_ITER, history_size=20,
                            tolerance_grad=1e-7, tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = alpha * F.cross_entropy(head(xt), yt)
        if xs is not None:
            loss = loss + (1.0 - alpha) * F.cross_entropy(head(xs), ys)
        loss = loss + 0.5 * l2 * head.weight.pow(2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"the linear model's loss is {float(loss)} (l2 {l2:g})")
    model.eval()
    val_score = val_pred = None
    if task.target_val is not None:
        val_pred = sdk.predict(model, task.target_val.X, device)
        val_score = sdk.score(task.score, task.target_val.y, val_pred, task.num_classes)
        if report is not None:
            report(0, val_score)
    info = {"l2": l2}
    if source is not None:
        info.update({"target_share": alpha, "source_rows": len(source)})
    return FitResult(model.cpu(), val_score, val_pred, epochs=1,
                     history=[] if val_score is None else [val_score], info=info)


class TargetLinear:
    """Logistic regression on the target's raw inputs, L2 strength searched."""

    name = "target_linear"
    family = "baseline"
    role = "reference"
    description = "Multinomial logistic regression on the target's raw inputs (no transfer), L2 searched."
    needs = Needs()
    deterministic = True

    def default_params(self, task: TransferTask) -> dict[str, Any]:
        return {"l2": 1e-2}

    def search_space(self, trial: optuna.Trial, task: TransferTask) -> dict[str, Any]:
        return {"l2": trial.suggest_float("l2", *L2_RANGE, log=True)}

    def fit(self, task: TransferTask, params: dict[str, Any], report: ReportFn | None) -> FitResult:
        return fit_linear(task, params, report)

    def risks(self, signals: dict[str, MetricResult], task: TransferTask) -> list[Risk]:
        return []


class PooledLinear:
    """The same logistic regression on source and target rows, the target's share of the loss searched."""

    name = "pooled_linear"
    family = "instance"
    role = "transfer"
    description = ("Logistic regression on the raw inputs of source and target rows together; the "
                   "target's share alpha of the loss is searched.")
    needs = Needs(source_data=True)
    deterministic = True

    def default_params(self, task: TransferTask) -> dict[str, Any]:
        return {"l2": 1e-2, "target_share": 0.5}

    def search_space(self, trial: optuna.Trial, task: TransferTask) -> dict[str, Any]:
        return {"l2": trial.suggest_float("l2", *L2_RANGE, log=True),
                "target_share": trial.suggest_float("target_share", *TARGET_SHARE_RANGE)}

    def fit(self, task: TransferTask, params: dict[str, Any], report: ReportFn | None) -> FitResult:
        reason = task.unmet(self.needs)
        if reason is not None:
            raise InputError(f"{self.name} {reason}")
        source, separate_head = source_for_target(task.source, task.classes)
        if separate_head:
            raise InputError(f"{self.name} needs source classes named like the target's; none match")
        return fit_linear(task, params, report, source=source)

    def risks(self, signals: dict[str, MetricResult], task: TransferTask) -> list[Risk]:
        return distance_risk(
            signals, "pooled raw source rows pull the decision boundary towards the source")
