"""Cross-validation on train+val (advisor.search.crossval): folds, no peeking, and a real learner's score."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from advisor.data.domain import Domain
from advisor.plugin.contracts import FitResult, TransferTask
from advisor.search.crossval import CV_SEED_BASE, CrossVal, cross_validate, paired_se, stratified_folds

CLASSES = tuple(str(c) for c in range(10))


class NearestMean:
    """A real learner with no randomness: a linear layer set to the class means of the rows it is given."""

    name, family, role = "nearest_mean", "baseline", "reference"

    def __init__(self) -> None:
        self.fits: list[tuple[np.ndarray, int, bool]] = []  # (training rows, seed, had a validation split)

    def fit(self, task, params, report):
        X, y = task.target_train.X.astype(np.float32), task.target_train.y
        self.fits.append((X.copy(), task.seed, task.target_val is not None))
        means = np.stack([X[y == c].mean(0) for c in range(len(CLASSES))])
        layer = torch.nn.Linear(X.shape[1], len(CLASSES))
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(means))
            layer.bias.copy_(torch.from_numpy(-0.5 * (means**2).sum(1)))
        return FitResult(model=layer, val_score=None, val_pred=None)


@pytest.fixture(scope="module")
def digits() -> tuple[Domain, Domain]:
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(y))[:300]
    full = Domain("digits", (X[idx] / 16).astype(np.float32), y[idx].astype(np.int64), CLASSES, "features")
    return full.subset(np.arange(100), "train"), full.subset(np.arange(100, 300), "val")


def _task(train: Domain, val: Domain, seed: int = 7) -> TransferTask:
    return TransferTask(source=None, target_train=train, target_val=val, backbone=None, seed=seed)  # type: ignore[arg-type]


def test_folds_are_stratified_deterministic_and_cover_every_row() -> None:
    y = np.repeat(np.arange(4), [13, 13, 7, 2])
    folds = stratified_folds(y, 3, seed=1)
    assert np.array_equal(folds, stratified_folds(y, 3, seed=1))
    assert not np.array_equal(folds, stratified_folds(y, 3, seed=2))
    assert set(folds) == {0, 1, 2}
    for c in range(3):  # each of these classes is spread over the folds within one row
        counts = np.bincount(folds[y == c], minlength=3)
        assert counts.max() - counts.min() <= 1
    sizes = np.bincount(folds, minlength=3)
    assert sizes.max() - sizes.min() <= 1


def test_every_row_is_predicted_by_a_model_that_never_saw_it(digits: tuple[Domain, Domain]) -> None:
    train, val = digits
    learner = NearestMean()
    cv = cross_validate(learner, _task(train, val), {}, seed_step=1000, k=3)
    full_X = np.concatenate([train.X, val.X])
    assert cv.y.tolist() == np.concatenate([train.y, val.y]).tolist() and (cv.pred >= 0).all()
    assert len(learner.fits) == 3
    seen = np.zeros(len(full_X), dtype=int)
    for X_fit, _seed, had_val in learner.fits:
        assert not had_val  # no early stopping on the held-out fold
        rows = {r.tobytes() for r in X_fit}
        seen += np.array([r.tobytes() in rows for r in full_X])
        assert len(X_fit) in (200, 199, 201)  # two thirds of train+val
    assert (seen == 2).all()  # each row trained 2 of the 3 fold models: it was held out of exactly one
    seeds = [s for _, s, _ in learner.fits]
    assert seeds == [7 + 1000 * (CV_SEED_BASE + f) for f in range(3)]  # fresh seeds, none the search's


def test_the_cross_validated_score_is_the_learners_out_of_sample_accuracy(digits: tuple[Domain, Domain]) -> None:
    """Nearest class means on digits: about 0.9 out of sample; a model scored on its own rows would differ."""
    train, val = digits
    cv = cross_validate(NearestMean(), _task(train, val), {}, seed_step=1000)
    acc = float((cv.pred == cv.y).mean())
    assert 0.8 < acc < 0.97
    # the same rows as training data of every fold model would be an in-sample score: higher
    learner = NearestMean()
    full = train.concat(val)
    fit = learner.fit(_task(full, val), {}, None)
    with torch.no_grad():
        in_sample = float((fit.model(torch.from_numpy(full.X)).argmax(1).numpy() == full.y).mean())
    assert in_sample > acc


def test_the_paired_standard_error_shrinks_with_agreement_and_rows() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    a = np.where(rng.random(400) < 0.8, y, (y + 1) % 3)
    b_close = a.copy()
    flip = rng.choice(400, 10, replace=False)
    b_close[flip] = (a[flip] + 1) % 3  # disagrees with a on 10 rows
    b_far = np.where(rng.random(400) < 0.8, y, (y + 2) % 3)  # independent errors: many discordant rows
    se_close = paired_se("accuracy", CrossVal(y, a, 3), CrossVal(y, b_close, 3))
    se_far = paired_se("accuracy", CrossVal(y, a, 3), CrossVal(y, b_far, 3))
    assert 0 < se_close < se_far
    # about sqrt(discordant) / n for accuracy: 10 discordant rows of 400 -> 0.008
    assert se_close == pytest.approx(np.sqrt(10) / 400, rel=0.35)
    assert paired_se("accuracy", CrossVal(y, a, 3), CrossVal(y, a, 3)) == 0.0
