"""``digits-distant``: a source too far from the target to help; transfer gives little or nothing.

Source: digits whose pixels are shuffled by one fixed, seeded permutation: the labels are
still learnable (a fixed permutation keeps all the information), but nothing local survives,
so the convolutional features a network learns on them are not the strokes the target needs.
Target: plain digits with few labels.

Calibration (``python -m bench.calibrate_scenarios``; the cnn, Adam, one CPU thread; test
accuracy in %; target_only = random init on target train; finetune = source model, fresh
head, all blocks trained; linear_probe = frozen source blocks; pooled = finetune plus
lam x cross-entropy on the labelled source; zero-shot = the source head as it is)::

    seed  target_only  finetune  linear_probe  pooled(lam=1)  pooled(lam=0.1)  zero-shot
    0         77.1       78.3      57.7          20.9           15.7            10.5
    1         73.4       72.3      53.2          31.4           30.2             9.1
    2         75.5       76.1      52.1          26.0           30.7            10.0

Validation gaps NTG = acc(target_only) - acc(method), paired bootstrap 95% interval, in points
(fine-tuning: level, interval across zero; probe and pooling: negative transfer)::

    seed  finetune             linear_probe          pooled(lam=1)         pooled(lam=0.1)
    0     -1.0 [ -5.0, +2.5]   +16.5 [ +9.5,+23.5]   +58.5 [+51.0,+66.0]   +66.0 [+58.5,+73.0]
    1     +1.5 [ -3.5, +6.0]   +21.0 [+13.0,+28.5]   +42.0 [+34.5,+49.0]   +41.5 [+34.0,+49.0]
    2     +0.0 [ -3.5, +3.5]   +24.5 [+18.0,+31.5]   +46.5 [+38.5,+54.5]   +47.5 [+40.0,+54.5]

Verdict-style test gain over target_only, both retrained on train+val (target_only reaches
97.5 / 97.0 / 98.7): finetune -0.2 [-1.1, +0.7], +0.2 [-0.7, +1.1], -0.6 [-1.3, +0.2]
(no_gain on every seed); linear_probe -25.7, -22.2, -24.3 (transfer_hurts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import DigitsScenario
from .digits import SplitSizes, to_unit

EXPECTED = (
    "no_gain (or transfer_hurts): the source images are pixel-shuffled digits, so the source "
    "model's features carry no local stroke structure; fine-tuning it is no better than "
    "training on the target alone, and strategies that lean on the source can only lose."
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
