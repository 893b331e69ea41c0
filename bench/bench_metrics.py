"""Metric benchmarks: ``python -m bench.bench_metrics [--quick]`` prints a markdown table.

1. MMD permutation test (n per side, d = 512, 200 permutations): the kernel matrix built once and
   reused by every permutation vs recomputing it for each permutation (the naive run is timed on
   fewer permutations and extrapolated linearly, since each permutation costs the same).
2. LogME (N = 2000, D = 512, C = 10): this implementation (one eigendecomposition, classes
   vectorised, iterated to convergence) vs a plain per-class NumPy version of the authors'
   algorithm that stops after at most 11 iterations.
3. MMD at n = 20000 per side, d = 512: peak resident memory of a fresh subprocess (ru_maxrss),
   with the process's baseline after imports and data creation alongside.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from advisor.metrics.kernels import _mmd2_from_kernel, kernel_matrix, median_sq_distance, mmd_test


@dataclass
class Row:
    """One benchmark line."""

    name: str
    ours: str
    reference: str
    ratio: str
    note: str


def _data(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)).astype(np.float32), (rng.normal(size=(n, d)) + 0.05).astype(np.float32)


def bench_mmd_permutations(n: int, d: int, perms: int, naive_perms: int) -> Row:
    """Kernel-reusing permutation test vs recomputing the kernel for every permutation."""
    x, y = _data(n, d)
    t0 = time.perf_counter()
    result = mmd_test(x, y, n_permutations=perms, seed=0)
    ours = time.perf_counter() - t0

    z = torch.from_numpy(np.concatenate([x, y]))
    z = z - z.mean(0)
    bw = median_sq_distance(z)
    g = torch.Generator().manual_seed(0)
    obs = torch.zeros((2 * n, 1))
    obs[:n] = 1.0
    t0 = time.perf_counter()
    for _ in range(naive_perms):  # naive: permute the data, rebuild the kernel, one statistic
        zp = z[torch.randperm(2 * n, generator=g)]
        _mmd2_from_kernel(kernel_matrix(zp, bw), obs, n)
    naive = (time.perf_counter() - t0) / naive_perms * (perms + 1)
    return Row(f"MMD permutation test, n={n}/side, d={d}, {perms} permutations",
               f"{ours:.2f} s", f"{naive:.1f} s (timed {naive_perms}, extrapolated)",
               f"{naive / ours:.0f}x faster", f"p = {result.p_value:.3f}, estimator {result.estimator}")


def authors_logme(f: np.ndarray, y: np.ndarray, max_iter: int = 11) -> float:
    """The authors' per-class algorithm (LogME.py, ICML path) in plain NumPy, at most 11 iterations."""
    fh = f
    ft = f.T
    d, n = ft.shape
    v, s, vh = np.linalg.svd(ft @ fh, full_matrices=True)
    evidences = []
    for c in np.unique(y):  # one class at a time, as the authors do
        y_ = (y == c).astype(np.float64)
        eps = 1e-5
        alpha, beta = 1.0, 1.0
        lam = alpha / beta
        tmp = vh @ (ft @ y_)
        for _ in range(max_iter):
            gamma = (s / (s + lam)).sum()
            m = v @ (tmp * beta / (alpha + beta * s))
            alpha_de = (m * m).sum()
            alpha = gamma / (alpha_de + eps)
            beta_de = ((y_ - fh @ m) ** 2).sum()
            beta = (n - gamma) / (beta_de + eps)
            new_lam = alpha / beta
            if np.abs(new_lam - lam) / lam < 0.01:
                break
            lam = new_lam
        evidence = (d / 2.0 * np.log(alpha) + n / 2.0 * np.log(beta) - 0.5 * np.sum(np.log(alpha + beta * s))
                    - beta / 2.0 * (beta_de + eps) - alpha / 2.0 * (alpha_de + eps) - n / 2.0 * np.log(2 * np.pi))
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def bench_logme(n: int, d: int, c: int, device: str) -> Row:
    """Converged, vectorised LogME vs the authors' per-class loop capped at 11 iterations."""
    from advisor_plugins.metrics.logme import logme

    rng = np.random.default_rng(1)
    y = rng.integers(0, c, n)
    f = rng.normal(size=(n, d)) + rng.normal(size=(c, d))[y] * 0.3
    t0 = time.perf_counter()
    ref = authors_logme(f, y)
    ref_t = time.perf_counter() - t0
    logme(f, y, device=device)  # warm-up (CUDA context, kernels)
    t0 = time.perf_counter()
    ours = logme(f, y, device=device)
    ours_t = time.perf_counter() - t0
    return Row(f"LogME N={n}, D={d}, C={c} ({device})", f"{ours_t * 1000:.0f} ms",
               f"{ref_t * 1000:.0f} ms", f"{ref_t / ours_t:.1f}x",
               f"ours {ours.value:.4f} ({ours.iterations} it., converged={ours.converged}); "
               f"11-iteration reference {ref:.4f}")


_MEMORY_CHILD = """
import resource, sys, time, numpy as np, torch
torch.set_num_threads(1)
from advisor.metrics.kernels import mmd_test
n, d = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
x = rng.standard_normal((n, d), dtype=np.float32)
y = rng.standard_normal((n, d), dtype=np.float32) + 0.02
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
r = mmd_test(x, y, seed=0)
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(base, peak, dt, r.estimator, r.p_value, r.block_size)
"""


def bench_mmd_memory(n: int, d: int) -> Row:
    """Peak RSS of a fresh process running the MMD test at ``n`` per side."""
    out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, str(n), str(d)], capture_output=True,
                         text=True, check=True).stdout.split()
    base, peak, dt = int(out[0]) / 2**20, int(out[1]) / 2**20, float(out[2])
    return Row(f"MMD peak memory, n={n}/side, d={d}", f"{peak:.2f} GiB peak RSS",
               "limit 2 GiB", f"{peak / 2:.0%} of limit",
               f"{out[3]} estimator (block {out[5]}), p = {float(out[4]):.3g}, {dt:.1f} s; "
               f"RSS before the test {base:.2f} GiB (torch + data)")


def main(argv: list[str] | None = None) -> None:
    """Run the benchmarks and print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    if args.quick:
        rows.append(bench_mmd_permutations(500, 64, 200, 5))
        rows.append(bench_logme(500, 64, 5, args.device))
        rows.append(bench_mmd_memory(4000, 64))
    else:
        rows.append(bench_mmd_permutations(2000, 512, 200, 10))
        rows.append(bench_logme(2000, 512, 10, args.device))
        rows.append(bench_mmd_memory(20000, 512))
    print(f"torch threads: 1; device: {args.device}; max RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB\n")
    print("| benchmark | ours | reference | ratio | note |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.name} | {r.ours} | {r.reference} | {r.ratio} | {r.note} |")


if __name__ == "__main__":
    main()
