"""LogME (You et al., ICML 2021): the maximised log marginal evidence of a Bayesian linear model.

For each class k (one-hot target ``y_k``), features ``F`` (N x D), prior w ~ N(0, 1/α) and noise
precision β, the log evidence per sample is L(α, β)/N with

    L = N/2 log β + D/2 log α - N/2 log 2π - β/2 ||F m - y||² - α/2 ||m||² - 1/2 log|αI + β FᵀF|,
    m = β (αI + β FᵀF)⁻¹ Fᵀ y.

With σ_i the r = rank(F) non-zero eigenvalues of FᵀF, log|αI + β FᵀF| = Σ_i log(α + β σ_i) +
(D - r) log α. The authors' default code drops the (D - r) log α term when N < D, which inflates
the score; it is kept here. (α, β) are found by MacKay's fixed point iterated to convergence (the
authors' older path stops after 11 iterations). One eigendecomposition (of the smaller Gram matrix)
is shared by all classes, and the iteration runs on all classes at once, in float64, on the chosen
device. LogME is the mean over classes; labels are remapped to contiguous ids first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from advisor.plugin import resolve_device


@dataclass
class LogMEResult:
    """LogME value and how the fixed point ended."""

    value: float
    per_class: list[float]
    iterations: int
    converged: bool


def logme(
    features: np.ndarray,
    labels: np.ndarray,
    device: str | None = "cpu",
    tol: float = 1e-7,
    evidence_tol: float = 1e-13,
    max_iter: int = 10_000,
) -> LogMEResult:
    """LogME of ``features`` (N x D) for integer ``labels`` (any ids), fully converged.

    Converged means, for every class, the relative change of α and β fell below ``tol`` or the
    change of the evidence per sample fell below ``evidence_tol`` (float64 round-off makes α, β
    jitter near 1e-9 when β is huge).
    """
    dev = resolve_device(device)
    f = torch.as_tensor(np.asarray(features), dtype=torch.float64, device=dev)
    _, y_ids = np.unique(np.asarray(labels), return_inverse=True)
    n, d = f.shape
    c = int(y_ids.max()) + 1
    y = torch.zeros((n, c), dtype=torch.float64, device=dev)
    y[torch.arange(n, device=dev), torch.as_tensor(y_ids, device=dev)] = 1.0

    if n >= d:
        sigma, v = torch.linalg.eigh(f.T @ f)  # D eigenpairs
        keep = sigma > sigma.max() * 1e-12
        sigma, v = sigma[keep], v[:, keep]
        z = (v.T @ (f.T @ y)) / sigma.sqrt()[:, None]  # Uᵀ y, r x C
    else:
        sigma, u = torch.linalg.eigh(f @ f.T)  # N eigenpairs
        keep = sigma > sigma.max() * 1e-12
        sigma, u = sigma[keep], u[:, keep]
        z = u.T @ y
    r = len(sigma)
    sigma = sigma[:, None]
    z2 = z * z
    outside = ((y * y).sum(0) - z2.sum(0)).clamp_min(0.0)  # part of y outside the range of F

    alpha = torch.ones(c, dtype=torch.float64, device=dev)
    beta = torch.ones(c, dtype=torch.float64, device=dev)
    last = _evidence(alpha, beta, sigma, z2, outside, n, d, r) / n
    converged = False
    it = 0
    tiny = torch.finfo(torch.float64).tiny
    while it < max_iter:
        it += 1
        denom = alpha + beta * sigma
        gamma = (beta * sigma / denom).sum(0)
        m2 = (beta * beta * sigma * z2 / (denom * denom)).sum(0)
        res2 = (alpha * alpha * z2 / (denom * denom)).sum(0) + outside
        new_alpha = gamma / m2.clamp_min(tiny)
        new_beta = (n - gamma) / res2.clamp_min(tiny)
        ok = torch.isfinite(new_alpha) & torch.isfinite(new_beta)
        new_alpha = torch.where(ok, new_alpha, alpha)
        new_beta = torch.where(ok, new_beta, beta)
        value = _evidence(new_alpha, new_beta, sigma, z2, outside, n, d, r) / n
        change = torch.maximum((new_alpha - alpha).abs() / alpha, (new_beta - beta).abs() / beta)
        # A class is done when α, β stop moving, or when its evidence does: a class the features
        # interpolate exactly (possible when N <= D) has its supremum at β -> infinity, where the
        # evidence tends to a finite limit while β keeps growing. Done classes stay put.
        moving = ok & (change >= tol) & ((value - last).abs() >= evidence_tol)
        alpha = torch.where(moving, new_alpha, alpha)
        beta = torch.where(moving, new_beta, beta)
        last = torch.where(moving, value, last)
        if not bool(moving.any()):
            converged = bool(ok.all())
            break

    evidence = _evidence(alpha, beta, sigma, z2, outside, n, d, r) / n
    per_class = evidence.cpu().tolist()
    return LogMEResult(float(np.mean(per_class)), per_class, it, converged)


def _evidence(alpha: torch.Tensor, beta: torch.Tensor, sigma: torch.Tensor, z2: torch.Tensor,
              outside: torch.Tensor, n: int, d: int, r: int) -> torch.Tensor:
    """L(α, β) per class from the spectral quantities (the full log-determinant)."""
    denom = alpha + beta * sigma
    m2 = (beta * beta * sigma * z2 / (denom * denom)).sum(0)
    res2 = (alpha * alpha * z2 / (denom * denom)).sum(0) + outside
    logdet = torch.log(denom).sum(0) + (d - r) * torch.log(alpha)
    return (n / 2 * torch.log(beta) + d / 2 * torch.log(alpha) - n / 2 * math.log(2 * math.pi)
            - beta / 2 * res2 - alpha / 2 * m2 - logdet / 2)
