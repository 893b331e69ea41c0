"""Cross-validation on train+val: the chosen settings scored at about the size the retrain trains on.

The search fits on the train split and scores on val, but the verdict's retrains fit on train+val: on
few-label tasks several times the rows (4.3x on the Office 3-label scenarios: 30 -> 130). Strategies
learn at different rates along that curve: a linear model on the target's raw inputs, poor on 30 rows,
is often the best learner on 130, while a transfer setting whose source share was tuned for 30 target
rows gains little. Picking B and the reference by their score on val (at 30 rows) then tests a transfer
strategy against a reference that the retrain makes much stronger, and the verdict says "transfer hurts"
where a better-chosen transfer strategy helps (measured: ``bench/crossval_pick.py``).

So the candidates' best settings (the retrain's parameters, best epoch included) are fitted ``k`` times on
train+val minus one stratified fold and scored on that fold (one fresh seed per fold): every labelled row
is predicted once by a model that trained on (k-1)/k of train+val, with no early stopping on the held-out
rows. The folds are the same for every candidate, so their scores are paired.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

#: Folds of the full-size check: fold models train on 2/3 of train+val (87 of 130 rows on Office 3-label).
CV_FOLDS = 3
#: Fold ``f`` trains with seed ``task.seed + seed_step * (CV_SEED_BASE + f)``: none of the search's, the seed
#: repeats' or the retrains' seeds.
CV_SEED_BASE = 500


@dataclass(frozen=True)
class CrossVal:
    """Out-of-fold predictions of one setting on train+val (``pred[i]``: the fold model that did not see row i)."""

    y: np.ndarray
    pred: np.ndarray
    folds: int


def stratified_folds(y: np.ndarray, k: int, seed: int) -> np.ndarray:
    """A fold id in ``0..k-1`` per row, each class dealt round-robin over the folds after a seeded shuffle."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(y), dtype=np.int64)
    offset = 0
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = (np.arange(len(idx)) + offset) % k  # classes start on different folds: sizes stay even
        offset += len(idx)
    return fold


def cross_validate(strategy: Any, task: Any, params: dict[str, Any], seed_step: int,
                   k: int = CV_FOLDS) -> CrossVal:
    """Out-of-fold predictions of ``params`` on ``task``'s train+val, ``k`` stratified folds (see module doc)."""
    from advisor.search.training import predict

    full = task.target_train.concat(task.target_val, name="target/train+val")
    folds = stratified_folds(full.y, k, task.seed)
    pred = np.full(len(full.y), -1, dtype=np.int64)
    for f in range(k):
        held = np.flatnonzero(folds == f)
        if len(held) == 0:
            continue
        train = full.subset(np.flatnonzero(folds != f), name=f"target/train+val-fold{f}")
        fold_task = replace(task, target_train=train, target_val=None,
                            seed=task.seed + seed_step * (CV_SEED_BASE + f))
        fit = strategy.fit(fold_task, dict(params), None)
        pred[held] = np.asarray(predict(fit.model, full.X[held], task.device), dtype=np.int64)
    return CrossVal(full.y, pred, k)


def paired_se(score_name: str, a: CrossVal, b: CrossVal, seed: int = 0) -> float:
    """One standard error of score(a) - score(b) on the same rows and folds: a paired bootstrap of the rows.

    Each row was predicted by one fold model per setting, so the rows' spread carries the fold models' seed
    luck as well as the samples' (about one SE: half the central 68.3% interval).
    """
    from advisor.search.scoring import seed_sample_diff

    est = seed_sample_diff(score_name, a.y, a.pred[None, :], b.pred[None, :], level=0.6827, seed=seed)
    return float((est.hi - est.lo) / 2)
