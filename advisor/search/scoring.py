"""Scores (accuracy, balanced accuracy, macro F1) and their bootstrap intervals.

Everything a recommendation claims is one of these scores on predicted class ids; the
intervals are percentile bootstraps over samples (paired when two models are compared on
the same samples).
"""

from __future__ import annotations

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
