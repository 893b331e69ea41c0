"""The source model as a Backbone: ordered blocks (input -> output) plus a head.

Freeze depth ``k`` freezes ``blocks[:k]``; ``k == len(blocks)`` is a linear probe. The
penultimate features are the output of the last block (flattened). Input normalisation is
part of ``blocks[0]``, so data stays in the Domain convention ([0, 1] images or raw tables).

Blocks per architecture (documented in README, built in ``advisor.models.architectures``):

- torchvision ResNets: ``[stem, layer1, layer2, layer3, layer4 + global pool]``
- MobileNetV3 / EfficientNet: their ``features`` stages, the last one with the global pool
- ``cnn`` (small CNN for small images): its conv stages, the last one with the pool
- ``mlp`` (feature tables): one block per hidden layer
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild the architecture without pickled objects."""

    arch: str
    input_kind: str  # "images" | "features"
    input_shape: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "input_kind": self.input_kind,
            "input_shape": list(self.input_shape),
            "options": dict(self.options),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelSpec:
        return cls(d["arch"], d["input_kind"], tuple(d["input_shape"]), dict(d.get("options", {})))


class Backbone(nn.Module):
    """An ``nn.Module`` cut into ordered blocks plus a classification head."""

    def __init__(
        self,
        blocks: list[nn.Module],
        head: nn.Module,
        feature_dim: int,
        spec: ModelSpec,
        source_classes: tuple[str, ...] = (),
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.feature_dim = feature_dim
        self.spec = spec
        self.source_classes = tuple(source_classes)

    @property
    def depth(self) -> int:
        """Number of blocks (the largest freeze depth)."""
        return len(self.blocks)

    def forward_blocks(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Run ``blocks[start:stop]``; the output of the last block is flattened."""
        stop = self.depth if stop is None else stop
        for i in range(start, stop):
            x = self.blocks[i](x)
        if stop == self.depth:
            x = torch.flatten(x, 1)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (output of the last block)."""
        return self.forward_blocks(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def with_new_head(self, num_classes: int, seed: int | None = None) -> Backbone:
        """A deep copy with a freshly initialised linear head for ``num_classes``."""
        clone = copy.deepcopy(self)
        if seed is not None:
            torch.manual_seed(seed)
        clone.head = nn.Linear(self.feature_dim, num_classes)
        clone.source_classes = ()
        return clone

    def freeze(self, k: int) -> None:
        """Freeze ``blocks[:k]`` (no gradients, eval mode for their batch norms)."""
        if not 0 <= k <= self.depth:
            raise ValueError(f"freeze depth {k} outside 0..{self.depth}")
        for i, block in enumerate(self.blocks):
            frozen = i < k
            for p in block.parameters():
                p.requires_grad_(not frozen)

    def train(self, mode: bool = True) -> Backbone:
        """Train mode, but frozen blocks keep their batch-norm statistics (eval mode)."""
        super().train(mode)
        if mode:
            for block in self.blocks:
                if not any(p.requires_grad for p in block.parameters()) and any(
                    True for _ in block.parameters()
                ):
                    block.eval()
        return self
