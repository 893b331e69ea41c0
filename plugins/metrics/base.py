"""What the built-in metrics share: applicability checks and label/prior helpers.

No torch here (the registry imports this package when the CLI starts).
"""

from __future__ import annotations

import numpy as np

from advisor.plugin import EvidenceKind, MetricInputs, Needs

NO_SOURCE = "needs source data (--source)"
NO_PREDICTIONS = (
    "needs the source model's predictions on the target (a source model with a classification "
    "head; not available with --model none)"
)
NO_TARGET_LABELS = "needs target labels"


class BaseMetric:
    """Identity attributes plus ``applicable(inputs)``: the reason it cannot run, or None.

    ``evidence`` is the kind of evidence the value is (``advisor.plugin.EVIDENCE_KINDS``), read by
    the quick advice; ``None`` for a metric whose value is shown but not read.
    """

    name: str = ""
    kind: str = "similarity"
    evidence: EvidenceKind | None = None
    description: str = ""
    needs: Needs = Needs()
    needs_target_labels: bool = False

    def applicable(self, inputs: MetricInputs) -> str | None:
        """Why this metric cannot run on ``inputs`` (``None`` when it can)."""
        if self.needs.source_data:
            if inputs.source_features is None:
                return NO_SOURCE
            if inputs.source_features.shape[1] != inputs.target_features.shape[1]:
                return (f"source and target features differ in dimension "
                        f"({inputs.source_features.shape[1]} vs {inputs.target_features.shape[1]})")
        if self.needs.source_predictions and inputs.source_probs is None:
            return NO_PREDICTIONS
        if self.needs.unlabeled_target and inputs.unlabeled_target_features is None:
            return "needs unlabelled target data (--target-unlabeled)"
        if self.needs_target_labels:
            if inputs.target_labels is None:
                return NO_TARGET_LABELS
            if len(np.unique(inputs.target_labels)) < 2:
                return "needs at least two target classes"
        return None

    def __repr__(self) -> str:
        return f"<metric {self.name}>"


def remap_labels(y: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels as contiguous ids 0..C-1 (in sorted order of the originals) and C."""
    _, inv = np.unique(np.asarray(y), return_inverse=True)
    return inv.astype(np.int64), int(inv.max()) + 1 if len(inv) else 0


def one_hot(y: np.ndarray, c: int) -> np.ndarray:
    """``N x c`` float64 indicator matrix of integer labels ``y``."""
    out = np.zeros((len(y), c))
    out[np.arange(len(y)), y] = 1.0
    return out


def target_rows(inputs: MetricInputs) -> np.ndarray:
    """Every target row a similarity metric may use: labelled train+val plus unlabelled."""
    if inputs.unlabeled_target_features is None:
        return inputs.target_features
    return np.concatenate([inputs.target_features, inputs.unlabeled_target_features])


def priors_by_name(labels: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    """Class frequencies keyed by class name (absent classes get 0)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(classes))
    total = counts.sum()
    return {c: float(n) / total for c, n in zip(classes, counts[: len(classes)], strict=True)}


def subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``n`` rows of ``x``, drawn without replacement (all rows when fewer)."""
    if len(x) <= n:
        return x
    return x[np.sort(rng.choice(len(x), n, replace=False))]
