"""``digits-distant``: a source too far from the target to help; transfer gives little or nothing.

Source: digits whose pixels are shuffled by one fixed, seeded permutation: the labels are
still learnable (a fixed permutation keeps all the information), but nothing local survives,
so the convolutional features a network learns on them are not the strokes the target needs.
Target: plain digits with few labels.

Calibrated rule: fine-tuning is level with target-only (``no_gain``, at most a point or two
either way), the probe and pooling lose (``transfer_hurts``); "little" is the promise, not a
verdict code.

Measurements: ``bench/results/scenario_calibration.md`` (``python -m bench.calibrate_scenarios``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import DigitsScenario
from .digits import SplitSizes, to_unit

EXPECTED = (
    "little or nothing (no_gain, transfer_hurts, or a gain of a point or two from plain "
    "fine-tuning): the source images are pixel-shuffled digits, so the source model's features "
    "carry no local stroke structure; fine-tuning it is at most slightly better than training on "
    "the target alone, and strategies that lean on the source's labels or frozen features lose."
)


@dataclass(frozen=True)
class DigitsDistant(DigitsScenario):
    """Pixel-shuffled source digits; plain target digits."""

    def pixel_permutation(self, seed: int, n_pixels: int) -> np.ndarray:
        """The fixed shuffle of the source's pixels for ``seed``."""
        return np.random.default_rng([seed, 2]).permutation(n_pixels)

    def source_images(self, x: np.ndarray, seed: int) -> np.ndarray:
        flat = x.reshape(len(x), -1)
        return to_unit(flat[:, self.pixel_permutation(seed, flat.shape[1])].reshape(x.shape))

    def target_images(self, x: np.ndarray, seed: int) -> np.ndarray:
        return to_unit(x)


def scenario() -> DigitsDistant:
    """The registered ``digits-distant`` scenario."""
    return DigitsDistant(
        name="digits-distant",
        description="pixel-shuffled digits -> digits; 2 labels per class",
        expected=EXPECTED,
        sizes=SplitSizes(source=70, train=2, val=20),
    )
