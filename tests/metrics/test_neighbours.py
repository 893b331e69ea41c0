"""Leave-one-out k-NN on raw inputs: separable data scores high, noise scores near chance."""

from __future__ import annotations

import numpy as np

from advisor.data.domain import Domain
from advisor.metrics.neighbours import MAX_DIM, knn_loo_accuracy, raw_knn_accuracy


def _domain(signal: float, dim: int = 20, n_per_class: int = 30, seed: int = 0) -> Domain:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class)
    X = rng.normal(size=(len(y), dim)) + signal * np.eye(dim)[y]
    return Domain("d", X.astype(np.float32), y, ("a", "b", "c"), "features")


def test_knn_loo_leaves_the_row_out() -> None:
    # Each point's only exact copy is itself: with the row left out, 1-NN must use the other class.
    X = np.array([[0.0], [10.0]])
    assert knn_loo_accuracy(X, np.array([0, 1]), 2, k=1) == 0.0


def test_raw_knn_separable_vs_noise() -> None:
    assert raw_knn_accuracy(_domain(signal=6.0)) > 0.85
    assert raw_knn_accuracy(_domain(signal=0.0)) < 0.55  # chance is 1/3


def test_raw_knn_standardises_columns() -> None:
    d = _domain(signal=6.0)
    scaled = Domain("s", d.X * np.r_[np.ones(3), 1e4 * np.ones(17)].astype(np.float32), d.y, d.classes,
                    "features")  # large noise-only columns would swamp unscaled distances
    assert raw_knn_accuracy(scaled) == raw_knn_accuracy(d)


def test_raw_knn_projects_wide_inputs_and_handles_tiny_domains() -> None:
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 10)
    X = rng.normal(size=(30, MAX_DIM + 100)) + rng.normal(size=(3, MAX_DIM + 100))[y]  # class means differ
    assert raw_knn_accuracy(Domain("w", X.astype(np.float32), y, ("a", "b", "c"), "features")) > 0.9
    tiny = Domain("t", np.zeros((2, 3), np.float32), np.array([0, 1]), ("a", "b"), "features")
    assert raw_knn_accuracy(tiny) is None
