"""``digits-conflict``: the source's labels mean something else (concept shift).

Source and target images are digits from the same distribution, but the source labels
are a fixed, seeded permutation of the digits with no fixed point (every source "3" may be
labelled "7", and so on) under the same class names. The source features are as good as
ever (a relabelling does not change what a network must tell apart), but the source
*labels* contradict the target's: any strategy that trains on labelled source data
(pooling, importance weighting, feature alignment with a source cross-entropy term) is
pulled towards the wrong answers, while fine-tuning the source model with a fresh head
only reuses the features.

Calibrated rule: pooling source labels is negative transfer far beyond noise on every seed,
fine-tuning with a fresh head and the probe are level with or above target-only; the verdict may
be ``transfer_helps`` or ``no_gain``, what matters is that no source-data strategy is recommended.

Measurements: ``bench/results/scenario_calibration.md`` (``python -m bench.calibrate_scenarios``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import DigitsScenario
from .digits import SplitSizes, derangement, to_unit

EXPECTED = (
    "Strategies that train on labelled source data (importance_weighting, feature_alignment) "
    "show negative transfer and must not be recommended, because the source labels are a "
    "permutation of the target's (same images, conflicting label semantics: the source model "
    "is near 0% accurate on the target although its predictions determine the target label). "
    "Fine-tuning the source model with a fresh head stays level with or above target_only."
)


@dataclass(frozen=True)
class DigitsConflict(DigitsScenario):
    """Same digits on both sides; source labels permuted by a seeded derangement."""

    def source_images(self, x: np.ndarray, seed: int) -> np.ndarray:
        return to_unit(x)

    def target_images(self, x: np.ndarray, seed: int) -> np.ndarray:
        return to_unit(x)

    def permutation(self, seed: int) -> np.ndarray:
        """``perm[d]`` is the label the source gives to digit ``d``."""
        return derangement(10, np.random.default_rng([seed, 1]))

    def source_labels(self, y: np.ndarray, seed: int) -> np.ndarray:
        return self.permutation(seed)[y].astype(np.int64)


def scenario() -> DigitsConflict:
    """The registered ``digits-conflict`` scenario."""
    return DigitsConflict(
        name="digits-conflict",
        description="digits -> digits, source labels permuted (concept shift); 2 labels per class",
        expected=EXPECTED,
        sizes=SplitSizes(source=70, train=2, val=20),
    )
