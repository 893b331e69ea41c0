"""``digits-distant``: a source too far from the target to help; transfer gives little or nothing.

Source: digits whose pixels are shuffled by one fixed, seeded permutation: the labels are
still learnable (a fixed permutation keeps all the information), but nothing local survives,
so the convolutional features a network learns on them are not the strokes the target needs.
Target: plain digits with few labels.

Calibration (``python -m bench.calibrate_scenarios``: the cnn pretrained on the source by
``advisor.models.sources.pretrain_source`` with its defaults, 5 epochs; then Adam, 150 steps, one
CPU thread; test accuracy in %; target_only = random init on target train; finetune = source
model, fresh head, all blocks trained; linear_probe = frozen source blocks; pooled = finetune
plus lam x cross-entropy on the labelled source; zero-shot = the source head as it is)::

    seed  target_only  finetune  linear_probe  pooled(lam=1)  pooled(lam=0.1)  zero-shot
    0         77.1       79.0      59.1          13.1           16.3             9.4
    1         73.4       73.2      50.9          27.7           30.2             7.4
    2         75.5       76.9      54.8          43.9           40.7            10.0

Validation gaps NTG = acc(target_only) - acc(method), paired bootstrap 95% interval, in points
(fine-tuning: level, interval across zero; probe and pooling: negative transfer)::

    seed  finetune             linear_probe          pooled(lam=1)         pooled(lam=0.1)
    0     -4.5 [ -9.0, +0.5]   +10.5 [ +3.0,+17.5]   +64.0 [+56.5,+71.5]   +61.0 [+53.5,+67.5]
    1     +0.5 [ -4.0, +5.0]   +19.5 [+11.5,+26.5]   +41.0 [+32.5,+49.0]   +40.5 [+32.5,+48.5]
    2     +1.5 [ -1.5, +4.5]   +19.5 [+13.0,+26.0]   +33.0 [+25.5,+40.0]   +33.0 [+25.0,+41.5]

Verdict-style test gain over target_only, both retrained on train+val (target_only reaches
97.5 / 97.0 / 98.7): finetune -0.3 [-1.3, +0.6], +0.3 [-0.8, +1.4], -0.2 [-0.8, +0.3]
(no_gain on every seed); linear_probe -27.4, -27.6, -28.1 (transfer_hurts). The advisor's own
run (6 trials per strategy, retrains with the trial's batch size) can find a small real gain for
plain fine-tuning, e.g. +1.4 points [+0.8, +2.1] on seed 0, which its rule calls transfer_helps:
"little" is the promise, not a verdict code.
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
