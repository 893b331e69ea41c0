"""The table standardisation layer: statistics from a few labelled rows must not blow up sparse columns."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advisor.models.architectures import Standardize


def _sparse_rows(n: int = 130, dim: int = 20, seed: int = 0) -> torch.Tensor:
    """Dense columns with deviation ~1 and one sparse column: a single non-zero value in ``n`` rows."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim))
    x[:, 0] = 0.0
    x[3, 0] = 1.0
    return torch.as_tensor(x, dtype=torch.float32)


def test_median_floor_keeps_a_sparse_column_on_the_dense_columns_scale() -> None:
    x = _sparse_rows()
    plain, floored = Standardize(x.shape[1]), Standardize(x.shape[1])
    plain.set_stats(x)
    floored.set_stats(x, scale_floor="median")
    later = torch.zeros(1, x.shape[1])
    later[0, 0] = 1.0  # a later row that is non-zero where the sample was sparse
    assert float(plain(later)[0, 0]) > 10.0  # 1 / (1 / sqrt(130)): the blow-up the floor prevents
    assert float(floored(later)[0, 0]) < 1.5
    # the dense columns (deviation ~1, above the median or close to it) are standardised as before
    dense = x[:, 1:].std(0) >= floored.std[1:]
    assert bool(dense.any())
    assert torch.allclose(floored.std[1:][dense], plain.std[1:][dense])


def test_median_floor_leaves_a_constant_column_finite() -> None:
    x = _sparse_rows()
    x[:, 1] = 5.0
    layer = Standardize(x.shape[1])
    layer.set_stats(x, scale_floor="median")
    assert torch.isfinite(layer(torch.full((1, x.shape[1]), 7.0))).all()
    assert float(layer.std[1]) == pytest.approx(float(x[:, 2:].std(0).median()), rel=0.2)


def test_unknown_floor_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown scale floor"):
        Standardize(3).set_stats(torch.ones(4, 3), scale_floor="mean")
