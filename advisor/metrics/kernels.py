"""Kernel two-sample machinery: differentiable MMD² and CORAL losses, and the MMD test.

Kernel convention (libraries differ, so it is fixed here): for a bandwidth ``m`` (by default
the *median heuristic*: the median squared Euclidean distance between distinct points of the
pooled sample, on a seeded subsample of at most ``MEDIAN_POINTS`` points) and scales ``s`` in
``scales`` (powers of two, default 2^-2 .. 2^2) the multi-kernel Gaussian is the mean

    k(a, b) = mean_s exp(-||a - b||² / (s * m))

i.e. each component is exp(-d² / (2 σ_s²)) with σ_s² = s * m / 2. Taking the mean keeps
k(a, a) = 1 and k in (0, 1].

Two families live here:

- differentiable torch losses for training (``gaussian_mmd2``, ``coral``): gradients flow
  through the inputs, never through the bandwidth (it is computed on detached data);
- the non-differentiable, bounded-memory permutation test the ``mmd`` metric runs
  (``mmd_test``): the pooled kernel matrix is built once, in row chunks, and every
  permutation reuses it (a batch of permutations is one matrix product). Past
  ``FULL_MAX_POINTS`` pooled points the quadratic matrix would not fit the memory bound, so
  the test switches to the block estimator (B-test, Zaremba et al. 2013): the mean of
  unbiased MMD² estimates on disjoint blocks, with a normal-approximation p-value. The
  result says which estimator ran.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_SCALES: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
MEDIAN_POINTS = 1000
FULL_MAX_POINTS = 12000  # pooled points; 12000² float32 = 576 MB kernel matrix
BLOCK_SIZE = 500  # points per side per block for the block estimator
ROW_CHUNK = 2048  # rows of the kernel matrix computed at once
PERMUTATION_BATCH = 50


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``"auto"``/``None`` -> CUDA when available, else CPU; anything else as given."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --------------------------------------------------------------------------- differentiable


def sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise squared Euclidean distances (clamped at 0), differentiable."""
    d = (a * a).sum(1, keepdim=True) + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return d.clamp_min(0.0)


def median_sq_distance(z: torch.Tensor, max_points: int = MEDIAN_POINTS, seed: int = 0) -> float:
    """The median heuristic: median squared distance between distinct rows of ``z``.

    Uses a seeded subsample of at most ``max_points`` rows; returns 1.0 when all rows are
    equal (a zero bandwidth would make the kernel degenerate).
    """
    z = z.detach()
    if len(z) > max_points:
        g = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(z), generator=g)[:max_points].to(z.device)
        z = z[idx]
    z = z.to(torch.float64) - z.to(torch.float64).mean(0)
    d = sq_distances(z, z)
    iu = torch.triu_indices(len(z), len(z), offset=1, device=z.device)
    m = float(torch.quantile(d[iu[0], iu[1]], 0.5)) if len(z) > 1 else 0.0
    return m if m > 0 else 1.0


def _kernel(d2: torch.Tensor, bandwidth: float, scales: tuple[float, ...]) -> torch.Tensor:
    k = torch.zeros_like(d2)
    for s in scales:
        k = k + torch.exp(d2 / (-s * bandwidth))
    return k / len(scales)


def gaussian_mmd2(
    x: torch.Tensor,
    y: torch.Tensor,
    scales: tuple[float, ...] = DEFAULT_SCALES,
    bandwidth: float | None = None,
) -> torch.Tensor:
    """Unbiased MMD² between samples ``x`` (n x d) and ``y`` (m x d), differentiable.

    Multi-kernel Gaussian as in the module docstring; ``bandwidth`` defaults to the median
    heuristic on the pooled (detached) sample. Needs at least 2 rows per side. Quadratic
    memory: meant for training mini-batches, not for whole data sets (see ``mmd_test``).
    """
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("gaussian_mmd2 needs at least 2 samples on each side")
    if bandwidth is None:
        bandwidth = median_sq_distance(torch.cat([x, y]))
    kxx = _kernel(sq_distances(x, x), bandwidth, scales)
    kyy = _kernel(sq_distances(y, y), bandwidth, scales)
    kxy = _kernel(sq_distances(x, y), bandwidth, scales)
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sxx + syy - 2.0 * kxy.mean()


def covariance(x: torch.Tensor) -> torch.Tensor:
    """Unbiased sample covariance (d x d) of the rows of ``x``."""
    xc = x - x.mean(0, keepdim=True)
    return xc.T @ xc / max(len(x) - 1, 1)


def coral_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CORAL distance ||C_x - C_y||²_F / (4 d²), differentiable (Sun & Saenko, 2016)."""
    d = x.shape[1]
    diff = covariance(x) - covariance(y)
    return (diff * diff).sum() / (4.0 * d * d)


# --------------------------------------------------------------------------- the test


@dataclass
class MMDTest:
    """Result of an MMD two-sample test."""

    mmd2: float
    p_value: float
    estimator: str  # "full" (quadratic, permutation test) or "block" (B-test, normal approx.)
    bandwidth: float
    n_permutations: int  # 0 for the block estimator
    n_x: int
    n_y: int
    block_size: int = 0


def kernel_matrix(
    z: torch.Tensor, bandwidth: float, scales: tuple[float, ...] = DEFAULT_SCALES,
    row_chunk: int = ROW_CHUNK,
) -> torch.Tensor:
    """The pooled kernel matrix of ``z``, built in row chunks (no n x n x d intermediate)."""
    n = len(z)
    norms = (z * z).sum(1)
    out = torch.empty((n, n), dtype=z.dtype, device=z.device)
    for start in range(0, n, row_chunk):
        stop = min(start + row_chunk, n)
        d2 = norms[start:stop, None] + norms[None, :] - 2.0 * (z[start:stop] @ z.T)
        d2.clamp_(min=0.0)
        block = out[start:stop]
        block.zero_()
        for s in scales:
            block.add_(torch.exp(d2 / (-s * bandwidth)))
        block.div_(len(scales))
        del d2
    return out


def _mmd2_from_kernel(k: torch.Tensor, assign: torch.Tensor, n_x: int) -> torch.Tensor:
    """Unbiased MMD² for each column of ``assign`` (n x P, 1 = in x) given the kernel ``k``.

    One matrix product serves the whole batch of P labellings; diag(k) is 1 by construction.
    """
    n = len(k)
    n_y = n - n_x
    ka = k @ assign  # n x P
    row = k.sum(1, keepdim=True)  # n x 1
    other = 1.0 - assign
    sxx = (assign * ka).sum(0) - n_x
    sxy = (other * ka).sum(0)
    syy = (other * (row - ka)).sum(0) - n_y
    return sxx / (n_x * (n_x - 1)) + syy / (n_y * (n_y - 1)) - 2.0 * sxy / (n_x * n_y)


def _full_test(z: torch.Tensor, n_x: int, bandwidth: float, scales: tuple[float, ...],
               n_permutations: int, seed: int) -> tuple[float, float]:
    n = len(z)
    k = kernel_matrix(z, bandwidth, scales)
    observed = torch.zeros((n, 1), dtype=z.dtype, device=z.device)
    observed[:n_x] = 1.0
    stat = float(_mmd2_from_kernel(k, observed, n_x)[0])
    g = torch.Generator().manual_seed(seed)
    exceed = 0
    done = 0
    while done < n_permutations:
        p = min(PERMUTATION_BATCH, n_permutations - done)
        ranks = torch.rand((p, n), generator=g).argsort(dim=1)  # p random permutations
        assign = (ranks < n_x).to(z.dtype).T.contiguous().to(z.device)
        perm_stats = _mmd2_from_kernel(k, assign, n_x)
        exceed += int((perm_stats >= stat).sum())
        done += p
    del k
    return stat, (exceed + 1) / (n_permutations + 1)


def _block_test(x: torch.Tensor, y: torch.Tensor, bandwidth: float, scales: tuple[float, ...],
                block_size: int, seed: int) -> tuple[float, float, int]:
    g = torch.Generator().manual_seed(seed)
    x = x[torch.randperm(len(x), generator=g).to(x.device)]
    y = y[torch.randperm(len(y), generator=g).to(y.device)]
    n_blocks = min(len(x), len(y)) // block_size
    stats = torch.empty(n_blocks, dtype=torch.float64)
    for b in range(n_blocks):
        sl = slice(b * block_size, (b + 1) * block_size)
        zb = torch.cat([x[sl], y[sl]])
        kb = kernel_matrix(zb, bandwidth, scales)
        ones = torch.zeros((len(zb), 1), dtype=zb.dtype, device=zb.device)
        ones[:block_size] = 1.0
        stats[b] = float(_mmd2_from_kernel(kb, ones, block_size)[0])
    mean = float(stats.mean())
    se = float(stats.std(unbiased=True)) / math.sqrt(n_blocks) if n_blocks > 1 else float("inf")
    p = 0.5 * math.erfc(mean / se / math.sqrt(2.0)) if se > 0 else (0.0 if mean > 0 else 1.0)
    return mean, p, n_blocks


def mmd_test(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    n_permutations: int = 200,
    scales: tuple[float, ...] = DEFAULT_SCALES,
    bandwidth: float | None = None,
    seed: int = 0,
    device: str | torch.device | None = "cpu",
    full_max_points: int = FULL_MAX_POINTS,
    block_size: int = BLOCK_SIZE,
) -> MMDTest:
    """Unbiased MMD² of ``x`` vs ``y`` with a p-value, in bounded memory, on ``device``.

    Up to ``full_max_points`` pooled rows: the pooled kernel matrix once (float32, row
    chunks) and a permutation test whose permutations all reuse it; p = (1 + #{perm >=
    observed}) / (1 + n_permutations). Beyond: the block estimator (disjoint blocks of
    ``block_size`` per side, mean of their unbiased MMD², one-sided normal p-value), whose
    memory is one (2·block_size)² kernel at a time.
    """
    dev = resolve_device(device)
    xt = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    xt = xt.to(device=dev, dtype=torch.float32)
    yt = yt.to(device=dev, dtype=torch.float32)
    if len(xt) < 2 or len(yt) < 2:
        raise ValueError("the MMD test needs at least 2 samples on each side")
    # centre on the pooled mean: distances are unchanged, float32 round-off is smaller
    centre = torch.cat([xt, yt]).mean(0, keepdim=True)
    xt, yt = xt - centre, yt - centre
    if bandwidth is None:
        bandwidth = median_sq_distance(torch.cat([xt, yt]), seed=seed)
    with torch.no_grad():
        if len(xt) + len(yt) <= full_max_points:
            stat, p = _full_test(torch.cat([xt, yt]), len(xt), bandwidth, scales, n_permutations, seed)
            return MMDTest(stat, p, "full", bandwidth, n_permutations, len(xt), len(yt))
        bs = min(block_size, min(len(xt), len(yt)) // 2)
        stat, p, _ = _block_test(xt, yt, bandwidth, scales, bs, seed)
        return MMDTest(stat, p, "block", bandwidth, 0, len(xt), len(yt), block_size=bs)
