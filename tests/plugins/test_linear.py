"""The linear strategies: logistic regression as strong as scikit-learn's, exportable, pooled with a share."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from advisor_plugins.strategies.linear import PooledLinear, TargetLinear
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

from advisor.data.domain import Domain
from advisor.models.architectures import build, linear_input_dim
from advisor.models.backbone import ModelSpec
from advisor.plugin.contracts import TransferTask, is_deterministic
from advisor.search.training import predict

CLASSES = tuple(str(i) for i in range(10))


@pytest.fixture(scope="module")
def digits() -> tuple[Domain, Domain, Domain]:
    """Digits as a 64-column table: 200 train rows, 300 validation rows, the rest a source pool."""
    d = load_digits()
    perm = np.random.default_rng(0).permutation(len(d.target))
    X, y = d.data[perm].astype(np.float32), d.target[perm]
    dom = Domain("digits", X, y, CLASSES, "features")
    return dom.subset(np.arange(200)), dom.subset(np.arange(200, 500)), dom.subset(np.arange(500, 1797))


def _task(train: Domain, val: Domain | None, source: Domain | None = None) -> TransferTask:
    backbone = build(ModelSpec("mlp", "features", (train.X.shape[1],)), 10, seed=0)
    return TransferTask(source=source, target_train=train, target_val=val, backbone=backbone)


def test_target_linear_matches_scikit_learn(digits):
    train, val, _ = digits
    l2 = 1e-2
    res = TargetLinear().fit(_task(train, val), {"l2": l2}, None)
    mean, std = train.X.mean(0), train.X.std(0, ddof=1)
    std[std <= 1e-6 * (1 + np.abs(mean))] = 1.0
    # scikit-learn minimises 0.5 ||w||^2 + C * sum(CE): the same optimum as mean(CE) + l2/2 ||w||^2
    sk = LogisticRegression(C=1.0 / (l2 * len(train)), max_iter=5000, tol=1e-8)
    sk.fit((train.X - mean) / std, train.y)
    ours = predict(res.model, val.X)
    theirs = sk.predict((val.X - mean) / std)
    assert np.mean(ours == theirs) >= 0.97
    assert res.val_score == pytest.approx(np.mean(ours == val.y))
    assert res.val_score > 0.85  # far above chance (0.1): the L-BFGS fit converged


def test_target_linear_reports_once_and_is_seed_free(digits):
    train, val, _ = digits
    seen = []
    a = TargetLinear().fit(_task(train, val), {"l2": 1e-3}, lambda e, s: seen.append((e, s)))
    task = _task(train, val)
    task.seed = 7
    b = TargetLinear().fit(task, {"l2": 1e-3}, None)
    assert seen == [(0, a.val_score)]
    assert np.array_equal(a.val_pred, b.val_pred)  # convex from a fixed start: the seed changes nothing
    assert np.array_equal(a.model.head.weight.detach().numpy(), b.model.head.weight.detach().numpy())
    assert is_deterministic(TargetLinear()) and is_deterministic(PooledLinear())  # so the advisor fits it once


def test_linear_model_round_trips_through_its_spec(digits):
    train, val, _ = digits
    res = TargetLinear().fit(_task(train, None), {"l2": 1e-2}, None)
    assert res.val_score is None and res.epochs == 1
    again = build(res.model.spec, 10)
    again.load_state_dict(res.model.state_dict(), strict=True)
    assert np.array_equal(predict(again, val.X), predict(res.model, val.X))


def test_linear_model_pools_large_images_to_32_pixels():
    spec = ModelSpec("linear", "images", (3, 64, 64))
    model = build(spec, 4)
    assert linear_input_dim(spec) == 3 * 32 * 32 == model.feature_dim
    out = model(torch.rand(2, 1, 64, 64))  # grey images are matched to the model's 3 channels
    assert out.shape == (2, 4)
    assert linear_input_dim(ModelSpec("linear", "images", (1, 16, 16))) == 256


def test_pooled_linear_target_share_weighs_a_conflicting_source(digits):
    train, val, pool = digits
    few = train.subset(np.arange(30))
    conflicting = Domain("shuffled", pool.X, (pool.y + 1) % 10, CLASSES, "features")  # same names, other meaning
    task = _task(few, val, conflicting)
    mostly_target = PooledLinear().fit(task, {"l2": 1e-2, "target_share": 0.95}, None)
    mostly_source = PooledLinear().fit(task, {"l2": 1e-2, "target_share": 0.05}, None)
    assert mostly_target.val_score > mostly_source.val_score + 0.3
    assert mostly_target.info["target_share"] == 0.95 and mostly_target.info["source_rows"] == len(pool)


def test_pooled_linear_needs_source_classes_named_like_the_target(digits):
    from advisor.errors import InputError

    train, val, pool = digits
    other = Domain("letters", pool.X, pool.y, tuple("abcdefghij"), "features")
    with pytest.raises(InputError, match="named like the target"):
        PooledLinear().fit(_task(train, val, other), {"l2": 1e-2, "target_share": 0.5}, None)


def test_target_linear_reads_uint8_images_like_their_float_copy():
    """Images are stored as uint8 and converted a batch at a time: same fit as the [0, 1] float copy."""
    d = load_digits()
    X8 = (d.images[:, None] * 255 / 16).round().astype(np.uint8)
    y = d.target
    backbone = build(ModelSpec("cnn", "images", (1, 8, 8)), 10, seed=0)

    def fit(X: np.ndarray) -> np.ndarray:
        dom = Domain("digits", X, y, CLASSES, "images")
        task = TransferTask(source=None, target_train=dom.subset(np.arange(300)),
                            target_val=dom.subset(np.arange(300, 600)), backbone=backbone)
        res = TargetLinear().fit(task, {"l2": 1e-2}, None)
        assert res.val_score > 0.75  # chance is 0.1
        return res.val_pred

    as_uint8, as_float = fit(X8), fit(X8.astype(np.float32) / 255.0)
    assert np.mean(as_uint8 == as_float) >= 0.99  # the same inputs up to float rounding
