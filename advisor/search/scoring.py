"""Scores (accuracy, balanced accuracy, macro F1) and their intervals.

Everything a recommendation claims is one of these scores on predicted class ids. Two kinds of
interval: ``seed_sample_ci`` / ``seed_sample_diff`` carry both sources of variance, training seeds
and samples (what the verdict and the gaps use); ``bootstrap_ci`` / ``paired_bootstrap_diff`` are
percentile bootstraps over samples only, the seeds' spread treated as known (kept for the quality
harness's oracle and the scenario calibration; with few seeds they call seed luck a difference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCORES = ("accuracy", "balanced_accuracy", "macro_f1")


def score(name: str, y_true: np.ndarray, y_pred: np.ndarray, num_classes: int | None = None) -> float:
    """The score ``name`` of predictions ``y_pred`` against ``y_true`` (class ids)."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if len(y_true) == 0:
        return float("nan")
    if name == "accuracy":
        return float(np.mean(y_true == y_pred))
    classes = np.unique(y_true) if num_classes is None else np.arange(num_classes)
    present = np.unique(y_true)
    if name == "balanced_accuracy":
        return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in present]))
    if name == "macro_f1":
        f1 = []
        for c in classes:
            if c not in present and c not in y_pred:
                continue
            tp = np.sum((y_pred == c) & (y_true == c))
            fp = np.sum((y_pred == c) & (y_true != c))
            fn = np.sum((y_pred != c) & (y_true == c))
            f1.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
        return float(np.mean(f1))
    raise ValueError(f"unknown score {name!r}; known: {', '.join(SCORES)}")


def _batched_scores(name: str, y_true: np.ndarray, preds: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Score of each prediction row in ``preds`` (R x n) on each bootstrap resample ``idx`` (B x n)."""
    out = np.empty((preds.shape[0], idx.shape[0]))
    if name == "accuracy":
        correct = preds == y_true[None, :]
        for r in range(preds.shape[0]):
            out[r] = correct[r][idx].mean(1)
        return out
    for r in range(preds.shape[0]):
        for b in range(idx.shape[0]):
            out[r, b] = score(name, y_true[idx[b]], preds[r][idx[b]])
    return out


def bootstrap_ci(
    name: str, y_true: np.ndarray, y_pred: np.ndarray, n_boot: int = 1000, level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``score(name)`` over samples.

    ``y_pred`` may be one prediction vector or a stack (seeds x n); the seeds are pooled
    by averaging their scores on each resample.
    """
    y_true = np.asarray(y_true)
    preds = np.atleast_2d(np.asarray(y_pred))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y_true), size=(n_boot, len(y_true)))
    dist = _batched_scores(name, y_true, preds, idx).mean(0)
    a = (1 - level) / 2
    return float(np.quantile(dist, a)), float(np.quantile(dist, 1 - a))


def paired_bootstrap_diff(
    name: str, y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, n_boot: int = 1000,
    level: float = 0.95, seed: int = 0,
) -> tuple[float, float, float]:
    """``score(a) - score(b)`` with a paired percentile bootstrap interval: (diff, lo, hi).

    ``pred_a`` and ``pred_b`` may each be a stack of seeds (R x n); each resample draws the
    same samples for both, and the seed-averaged scores are compared.
    """
    y_true = np.asarray(y_true)
    pa = np.atleast_2d(np.asarray(pred_a))
    pb = np.atleast_2d(np.asarray(pred_b))
    diff = float(np.mean([score(name, y_true, p) for p in pa]) -
                 np.mean([score(name, y_true, p) for p in pb]))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y_true), size=(n_boot, len(y_true)))
    dist = _batched_scores(name, y_true, pa, idx).mean(0) - _batched_scores(name, y_true, pb, idx).mean(0)
    a = (1 - level) / 2
    return diff, float(np.quantile(dist, a)), float(np.quantile(dist, 1 - a))


#: What an interval covers, in the report's words.
COVERS_SEEDS = "training seeds and samples"
COVERS_SAMPLES = "samples only (one training seed per arm: seed luck not included)"


@dataclass(frozen=True)
class Estimate:
    """A score, or a difference of two scores, with its interval and what that interval covers.

    ``seeds`` is the number of training seeds behind each arm (one entry for a score, two for a
    difference). ``with_seeds`` is False when an arm has a single seed: the interval then covers
    the samples only, and the verdict rule does not commit on it.
    """

    value: float
    lo: float
    hi: float
    seeds: tuple[int, ...]
    level: float = 0.95

    @property
    def with_seeds(self) -> bool:
        return min(self.seeds) >= 2

    @property
    def covers(self) -> str:
        return COVERS_SEEDS if self.with_seeds else COVERS_SAMPLES

    @property
    def above_zero(self) -> bool:
        """The interval clears zero upwards with both sources of variance."""
        return self.with_seeds and self.lo > 0

    @property
    def below_zero(self) -> bool:
        """The interval clears zero downwards with both sources of variance."""
        return self.with_seeds and self.hi < 0

    def rounded(self, digits: int = 4) -> tuple[float, list[float]]:
        """(value, [lo, hi]) rounded for the report."""
        return round(self.value, digits), [round(self.lo, digits), round(self.hi, digits)]


def seed_scores(name: str, y_true: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """The score of each seed's predictions (``preds``: seeds x n) on the same samples."""
    return np.array([score(name, y_true, p) for p in np.atleast_2d(np.asarray(preds))])


def _components_interval(value: float, seed_vars: list[tuple[float, int]], sample_var: float, n: int,
                         level: float) -> tuple[float, float]:
    """``value`` ± t·SE, SE² = Σ seed variance / R + sample variance, df by Welch–Satterthwaite."""
    from scipy.stats import t as student_t

    parts = [v / r for v, r in seed_vars]
    total = sum(parts) + sample_var
    if total <= 0:
        return value, value
    denom = sum(p * p / (r - 1) for p, (_, r) in zip(parts, seed_vars, strict=True)) + sample_var ** 2 / max(n - 1, 1)
    df = total ** 2 / denom if denom > 0 else float(max(n - 1, 1))
    half = float(student_t.ppf(1 - (1 - level) / 2, df)) * float(np.sqrt(total))
    return value - half, value + half


def seed_sample_se(name: str, y_true: np.ndarray, preds: np.ndarray, n_boot: int = 1000, seed: int = 0) -> float:
    """The standard error of the seed-averaged score of ``preds`` (seeds x n): seeds and samples.

    SE² = the per-seed scores' variance / R (0 with one seed) + the variance of the seed-averaged score
    over a bootstrap of the samples; the same components as ``seed_sample_ci``'s interval.
    """
    y_true = np.asarray(y_true)
    p = np.atleast_2d(np.asarray(preds))
    s = seed_scores(name, y_true, p)
    idx = np.random.default_rng(seed).integers(0, len(y_true), size=(n_boot, len(y_true)))
    sample_var = float(_batched_scores(name, y_true, p, idx).mean(0).var(ddof=1))
    seed_var = float(s.var(ddof=1)) / len(s) if len(s) >= 2 else 0.0
    return float(np.sqrt(seed_var + sample_var))


def seed_sample_ci(
    name: str, y_true: np.ndarray, preds: np.ndarray, n_boot: int = 1000, level: float = 0.95, seed: int = 0,
) -> Estimate:
    """The seed-averaged score of ``preds`` (seeds x n) with an interval over training seeds and samples.

    Variance components: the per-seed scores' variance over R seeds (divided by R), plus the variance
    of the seed-averaged score over a bootstrap of the samples; the interval is the mean ± a Student t
    quantile (Welch–Satterthwaite degrees of freedom) times their root, clipped to [0, 1] where
    every score lives. With one seed it is the samples-only percentile bootstrap
    (``Estimate.with_seeds`` is False).
    """
    y_true = np.asarray(y_true)
    p = np.atleast_2d(np.asarray(preds))
    s = seed_scores(name, y_true, p)
    value = float(s.mean())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y_true), size=(n_boot, len(y_true)))
    dist = _batched_scores(name, y_true, p, idx).mean(0)
    a = (1 - level) / 2
    if len(s) < 2:
        return Estimate(value, float(np.quantile(dist, a)), float(np.quantile(dist, 1 - a)), (len(s),), level)
    lo, hi = _components_interval(value, [(float(s.var(ddof=1)), len(s))], float(dist.var(ddof=1)), len(y_true),
                                  level)
    # Every score lives in [0, 1]; with few seeds the t interval can reach past it.
    return Estimate(value, max(lo, 0.0), min(hi, 1.0), (len(s),), level)


def seed_sample_diff(
    name: str, y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, n_boot: int = 1000,
    level: float = 0.95, seed: int = 0,
) -> Estimate:
    """``score(a) - score(b)``, each averaged over its seeds, with an interval over seeds and samples.

    The arms' seeds are independent runs (unpaired: Welch), the samples are shared (paired: each
    bootstrap resample draws the same samples for both arms). The interval is the difference ± a
    Student t quantile times the root of (seed variance of a / R_a + seed variance of b / R_b +
    the paired sample bootstrap's variance), Welch–Satterthwaite degrees of freedom. Counting the
    per-sample part of seed noise in both terms errs on the wide side. With a single seed in either
    arm it falls back to the samples-only paired percentile bootstrap (``with_seeds`` False).
    """
    y_true = np.asarray(y_true)
    pa = np.atleast_2d(np.asarray(pred_a))
    pb = np.atleast_2d(np.asarray(pred_b))
    sa, sb = seed_scores(name, y_true, pa), seed_scores(name, y_true, pb)
    value = float(sa.mean() - sb.mean())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(y_true), size=(n_boot, len(y_true)))
    dist = _batched_scores(name, y_true, pa, idx).mean(0) - _batched_scores(name, y_true, pb, idx).mean(0)
    seeds = (len(sa), len(sb))
    a = (1 - level) / 2
    if min(seeds) < 2:
        return Estimate(value, float(np.quantile(dist, a)), float(np.quantile(dist, 1 - a)), seeds, level)
    lo, hi = _components_interval(value, [(float(sa.var(ddof=1)), len(sa)), (float(sb.var(ddof=1)), len(sb))],
                                  float(dist.var(ddof=1)), len(y_true), level)
    return Estimate(value, lo, hi, seeds, level)
