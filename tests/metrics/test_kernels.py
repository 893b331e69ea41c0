"""Kernel losses and the MMD test against plain NumPy, and the test's calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advisor.metrics.kernels import (
    _mmd2_from_kernel,
    coral_distance,
    gaussian_mmd2,
    kernel_matrix,
    median_sq_distance,
    mmd_test,
)


def _numpy_mmd2(x: np.ndarray, y: np.ndarray, m: float, scales: tuple[float, ...]) -> float:
    z = np.concatenate([x, y])
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    k = np.mean([np.exp(-d2 / (s * m)) for s in scales], axis=0)
    n, p = len(x), len(y)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    return float((kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - p) / (p * (p - 1)) - 2 * kxy.mean())


def test_gaussian_mmd2_matches_numpy_and_is_differentiable() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 4)), rng.normal(size=(26, 4)) + 0.5  # an even number of pairs
    z = np.concatenate([x, y])
    d2 = ((z[:, None] - z[None]) ** 2).sum(-1)
    m = float(np.median(d2[np.triu_indices(len(z), 1)]))
    xt = torch.tensor(x, requires_grad=True)
    got = gaussian_mmd2(xt, torch.tensor(y))
    assert float(got.detach()) == pytest.approx(_numpy_mmd2(x, y, m, (0.25, 0.5, 1.0, 2.0, 4.0)), rel=1e-9)
    got.backward()
    assert xt.grad is not None and torch.isfinite(xt.grad).all() and xt.grad.abs().sum() > 0


def test_coral_loss_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 3)), rng.normal(size=(35, 3)) * 1.5
    expect = ((np.cov(x, rowvar=False) - np.cov(y, rowvar=False)) ** 2).sum() / (4 * 9)
    assert float(coral_distance(torch.tensor(x), torch.tensor(y))) == pytest.approx(expect, rel=1e-10)


def test_kernel_matrix_chunks_and_permutation_batches_agree_with_direct() -> None:
    rng = np.random.default_rng(2)
    z = torch.tensor(rng.normal(size=(50, 3)), dtype=torch.float64)
    m = median_sq_distance(z)
    k_small = kernel_matrix(z, m, row_chunk=7)
    k_full = kernel_matrix(z, m, row_chunk=1000)
    assert torch.allclose(k_small, k_full)
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(0))
    assign = torch.zeros((50, 1), dtype=torch.float64)
    assign[perm[:20]] = 1.0
    batched = float(_mmd2_from_kernel(k_full, assign, 20)[0])
    zp = z.numpy()
    mask = assign[:, 0].bool().numpy()
    assert batched == pytest.approx(_numpy_mmd2(zp[mask], zp[~mask], m, (0.25, 0.5, 1.0, 2.0, 4.0)), rel=1e-9)


def test_mmd_test_is_calibrated_under_the_null() -> None:
    """Same distribution: p < 0.05 in at most about 10% of 50 seeded repeats."""
    torch.set_num_threads(1)
    rejections = 0
    for seed in range(50):
        rng = np.random.default_rng(100 + seed)
        t = mmd_test(rng.normal(size=(30, 4)), rng.normal(size=(30, 4)), seed=seed)
        rejections += t.p_value < 0.05
    assert rejections <= 7  # 10% of 50 is 5; binomial noise allows a little more


def test_mmd_test_detects_a_clear_mean_shift() -> None:
    rng = np.random.default_rng(3)
    t = mmd_test(rng.normal(size=(60, 4)), rng.normal(size=(50, 4)) + 1.0)
    assert t.estimator == "full" and t.n_permutations == 200
    assert t.p_value < 0.01 and t.mmd2 > 0


def test_block_estimator_past_the_threshold_says_so() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(400, 3)), rng.normal(size=(400, 3))
    same = mmd_test(x, y, full_max_points=200, block_size=40)
    shifted = mmd_test(x, y + 1.0, full_max_points=200, block_size=40)
    assert same.estimator == shifted.estimator == "block" and same.block_size == 40
    assert same.p_value > 0.01
    assert shifted.p_value < 1e-4 and shifted.mmd2 > 0.05
