"""``digits-conflict``: the source's labels mean something else (concept shift).

Source and target images are digits from the same distribution, but the source labels
are a fixed, seeded permutation of the digits with no fixed point (every source "3" may be
labelled "7", and so on) under the same class names. The source features are as good as
ever (a relabelling does not change what a network must tell apart), but the source
*labels* contradict the target's: any strategy that trains on labelled source data
(pooling, importance weighting, feature alignment with a source cross-entropy term) is
pulled towards the wrong answers, while fine-tuning the source model with a fresh head
only reuses the features.

Calibration (``python -m bench.calibrate_scenarios``: the cnn pretrained on the source by
``advisor.models.sources.pretrain_source`` with its defaults, 5 epochs; then Adam, 150 steps, one
CPU thread; test accuracy in %; target_only = random init on target train; finetune = source
model, fresh head, all blocks trained; linear_probe = frozen source blocks; pooled = finetune
plus lam x cross-entropy on the labelled source; zero-shot = the source head as it is)::

    seed  target_only  finetune  linear_probe  pooled(lam=1)  pooled(lam=0.1)  zero-shot
    0         77.1       85.7      95.4           2.2            6.0             2.2
    1         73.4       84.8      95.1           2.6            5.6             1.3
    2         75.5       85.6      94.2           1.3            5.2             0.7

Validation gaps NTG = acc(target_only) - acc(method), paired bootstrap 95% interval, in points
(pooling: negative transfer, interval far above zero; the fresh-head methods: below zero)::

    seed  finetune             linear_probe          pooled(lam=1)         pooled(lam=0.1)
    0    -10.5 [-15.0, -6.0]   -17.0 [-22.0,-12.0]   +73.0 [+67.0,+79.0]   +71.5 [+65.5,+77.0]
    1     -9.5 [-14.5, -4.5]   -25.0 [-31.0,-19.0]   +66.5 [+60.0,+73.5]   +62.5 [+55.5,+69.5]
    2     -9.0 [-13.0, -5.5]   -19.0 [-24.5,-13.5]   +74.5 [+68.5,+80.5]   +69.5 [+63.0,+75.5]

Verdict-style test gain over target_only, both retrained on train+val (target_only reaches
97.5 / 97.0 / 98.7): finetune +1.1 [+0.2, +2.2], +0.7 [-0.0, +1.5], +0.2 [-0.5, +0.9];
linear_probe +1.1 [+0.1, +2.2], +1.3 [+0.3, +2.2], -0.5 [-1.4, +0.5] (seeds 0, 1, 2): the
source features help or are neutral, so the verdict may be ``transfer_helps`` or ``no_gain``;
what matters here is that no source-data strategy is recommended.
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
