"""``digits-shift``: a related but shifted target with few labels; transfer should clearly help.

Source: plain digits. Target: other digits, blurred (Gaussian, sigma = 1 pixel of the 16x16
image): thinner detail is gone, strokes are wider and fainter, and the source model alone gets
only some of them right. The shapes survive, so the source features still describe the target;
with two labels per class a network trained from scratch cannot learn those shapes on its own.
The validation split is small (5 per class) on purpose: the verdict retrains on train+val, and
the more target labels there are, the less any source can add (with 10 or 20 per class the
verdict was no longer decisive). Fine-tuning and the linear probe beat target-only on every
calibration seed.

Measurements: ``bench/results/scenario_calibration.md`` (``python -m bench.calibrate_scenarios``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import DigitsScenario
from .digits import SplitSizes, blur, to_unit

EXPECTED = (
    "transfer_helps: fine-tuning the source model (and the transfer strategies built on it) "
    "should beat training on the target alone by a clear margin, because the target digits "
    "are the same shapes blurred, and two labels per class are far too few to learn them from "
    "scratch. Strategies that also train on the labelled source data help as well."
)


@dataclass(frozen=True)
class DigitsShift(DigitsScenario):
    """Plain source digits; target digits blurred by a Gaussian of ``sigma`` pixels."""

    sigma: float = 1.0

    def source_images(self, x: np.ndarray, seed: int) -> np.ndarray:
        return to_unit(x)

    def target_images(self, x: np.ndarray, seed: int) -> np.ndarray:
        return to_unit(blur(x, self.sigma))


def scenario() -> DigitsShift:
    """The registered ``digits-shift`` scenario."""
    return DigitsShift(
        name="digits-shift",
        description="digits -> blurred digits; 2 labels per class",
        expected=EXPECTED,
        sizes=SplitSizes(source=70, train=2, val=5),
        default=True,  # the demo a bare `advisor recommend --demo` runs
    )
