"""``digits-shift``: a related but shifted target with few labels; transfer should clearly help.

Source: plain digits. Target: other digits, rotated, blurred and inverted (white strokes
on black become black on white). The strokes keep their shapes, so features learned on the
source still describe the target once the first layers adapt; with two labels per class a
network trained from scratch cannot learn those shapes on its own.

Calibration: see the end of this docstring (``python -m bench.calibrate_scenarios``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import DigitsScenario
from .digits import SplitSizes, blur, rotate, to_unit

EXPECTED = (
    "transfer_helps: fine-tuning the source model (and the transfer strategies built on it) "
    "should beat training on the target alone by a clear margin, because the target digits "
    "are the same shapes rotated, blurred and inverted, and two labels per class are far too "
    "few to learn them from scratch."
)


@dataclass(frozen=True)
class DigitsShift(DigitsScenario):
    """Plain source digits; target digits rotated by ``degrees``, blurred by ``sigma``, inverted."""

    degrees: float = 25.0
    sigma: float = 0.7
    invert: bool = True

    def source_images(self, x: np.ndarray, seed: int) -> np.ndarray:
        return to_unit(x)

    def target_images(self, x: np.ndarray, seed: int) -> np.ndarray:
        out = blur(rotate(x, self.degrees), self.sigma)
        out = out / max(float(out.max()), 1e-6)
        return to_unit(1.0 - out if self.invert else out)


def scenario() -> DigitsShift:
    """The registered ``digits-shift`` scenario."""
    return DigitsShift(
        name="digits-shift",
        description="digits -> rotated, blurred, inverted digits; 2 labels per class",
        expected=EXPECTED,
        sizes=SplitSizes(source=70, train=2, val=30),
    )
