"""The common shape of a digits scenario: a name, what to expect, and a seeded ``build``."""

from __future__ import annotations

import abc
from dataclasses import dataclass

import numpy as np

from advisor.plugin import Domain, ScenarioData, TargetSplits

from .digits import CLASSES, SplitSizes, load_digits_16, split_pools


@dataclass(frozen=True)
class DigitsScenario(abc.ABC):
    """A scenario built from the digits; subclasses say how source and target images differ.

    ``build(seed)`` splits the digits into disjoint source and target pools (seeded,
    stratified, fixed per-class sizes, see ``split_pools``), maps every image through
    ``source_images`` / ``target_images`` and relabels the source with ``source_labels``.
    ``default`` marks the scenario a bare ``--demo`` runs.
    """

    name: str
    description: str
    expected: str
    sizes: SplitSizes
    default: bool = False

    @abc.abstractmethod
    def source_images(self, x: np.ndarray, seed: int) -> np.ndarray:
        """Source view of ``N x 16 x 16`` digits: ``N x 1 x 16 x 16`` float32 in [0, 1]."""

    @abc.abstractmethod
    def target_images(self, x: np.ndarray, seed: int) -> np.ndarray:
        """Target view of ``N x 16 x 16`` digits: ``N x 1 x 16 x 16`` float32 in [0, 1]."""

    def source_labels(self, y: np.ndarray, seed: int) -> np.ndarray:
        """The source labels: the digits' own unless the scenario changes their meaning."""
        return y.copy()

    def build(self, seed: int = 0) -> ScenarioData:
        """Source domain and target splits for ``seed`` (deterministic; well under a second)."""
        x, y = load_digits_16()
        pools = split_pools(y, self.sizes, seed)
        origin = f"scenario:{self.name}"
        src = pools["source"]
        source = Domain(f"{self.name}/source", self.source_images(x[src], seed),
                        self.source_labels(y[src], seed), CLASSES, "images", origin)
        x_target = self.target_images(x, seed)
        parts = {
            split: Domain(f"{self.name}/target/{split}", x_target[pools[split]], y[pools[split]].copy(),
                          CLASSES, "images", origin)
            for split in ("train", "val", "test")
        }
        return ScenarioData(source=source, target=TargetSplits(**parts), model="cnn",
                            expected=self.expected)
