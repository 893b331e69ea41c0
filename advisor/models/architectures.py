"""Architectures, cut into blocks (see ``advisor.models.backbone``), built from a ``ModelSpec``.

``build(spec, num_classes)`` returns a randomly initialised Backbone; weights come from
``advisor.models.sources`` (a file, the torch hub cache, a checkpoint, or pretraining here).

Blocks per architecture:

- ``cnn``: three conv stages (conv-BN-ReLU-pool), the last with a global average pool.
- ``mlp``: one block per hidden layer (Linear-ReLU); the first also standardises inputs
  with statistics stored as buffers (set from the source data).
- ``resnet18`` / ``resnet50``: ``[stem, layer1, layer2, layer3, layer4 + pool]``. With
  ``small_input`` (inputs under 64 px, no pretrained file) the stem is a 3x3 stride-1 conv
  without max-pool, as is usual for 32x32 images.
- ``mobilenet_v3_small`` / ``efficientnet_b0``: their ``features`` grouped into stages by
  output resolution (a new block starts where the resolution halves), the last with the pool.
- ``linear``: multinomial logistic regression on the raw inputs. One parameter-free block
  (images: average-pooled to at most ``LINEAR_MAX_SIDE`` px a side, channels matched, flattened;
  then standardised with stored statistics) and a linear head. The simple learner every
  transfer strategy must beat.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from advisor.errors import InputError
from advisor.models.backbone import Backbone, ModelSpec

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCHVISION_ARCHS = ("resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0")
#: Architectures a source model can have (what ``--model`` names).
SOURCE_ARCHS = ("cnn", "mlp", *TORCHVISION_ARCHS)
#: Every architecture ``build`` knows: the source ones and the raw-input ``linear`` model.
ARCHS = (*SOURCE_ARCHS, "linear")
#: The ``linear`` model reads images average-pooled to at most this many pixels a side.
LINEAR_MAX_SIDE = 32


class ImageInput(nn.Module):
    """Normalise [0, 1] images and match the channel count the network expects."""

    def __init__(self, channels: int, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std


class Standardize(nn.Module):
    """Standardise table features with stored statistics (buffers, saved with the model)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_stats(self, x: torch.Tensor, scale_floor: str | None = None) -> None:
        """Column means and standard deviations of ``x``; a constant column keeps scale 1.

        A column that is constant in a small sample (common in sparse tables such as SURF
        histograms with a few dozen rows) would otherwise be divided by ~0 and blow up every
        later row that differs there. ``scale_floor="median"`` goes further, for statistics taken
        from a few dozen labelled rows: no column is scaled by less than the median column's
        standard deviation. A sparse column with one non-zero value in 130 rows has a tiny
        deviation, and dividing by it turns a later row that is non-zero there into a z-score of
        10 or more; on the Office 3-label tasks logistic regression standardised that way scored
        2.5 points below scikit-learn's on the raw features, 1.3 with the floor.
        """
        if scale_floor not in (None, "median"):
            raise ValueError(f"unknown scale floor {scale_floor!r} (known: 'median')")
        mean = x.mean(0)
        std = x.std(0) if len(x) > 1 else torch.zeros_like(mean)
        constant = std <= 1e-6 * (1.0 + mean.abs())
        if scale_floor == "median" and bool((~constant).any()):
            std = torch.clamp(std, min=float(std[~constant].median()))
            constant = torch.zeros_like(constant)
        self.mean.copy_(mean)
        self.std.copy_(torch.where(constant, torch.ones_like(std), std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def _cnn(spec: ModelSpec, num_classes: int) -> Backbone:
    c = spec.input_shape[0]
    w = int(spec.options.get("width", 32))

    def stage(cin: int, cout: int, last: bool = False) -> list[nn.Module]:
        pool: nn.Module = nn.AdaptiveAvgPool2d(1) if last else nn.MaxPool2d(2)
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True), pool]

    blocks = [
        nn.Sequential(ImageInput(c, (0.5,) * c, (0.5,) * c), *stage(c, w)),
        nn.Sequential(*stage(w, 2 * w)),
        nn.Sequential(*stage(2 * w, 4 * w, last=True)),
    ]
    return Backbone(blocks, nn.Linear(4 * w, num_classes), 4 * w, spec)


def _mlp(spec: ModelSpec, num_classes: int) -> Backbone:
    d = spec.input_shape[0]
    hidden = [int(h) for h in spec.options.get("hidden", (256, 128))]
    blocks: list[nn.Module] = []
    prev = d
    for i, h in enumerate(hidden):
        layers: list[nn.Module] = [Standardize(d)] if i == 0 else []
        layers += [nn.Linear(prev, h), nn.ReLU(inplace=True)]
        if spec.options.get("dropout", 0.0):
            layers.append(nn.Dropout(float(spec.options["dropout"])))
        blocks.append(nn.Sequential(*layers))
        prev = h
    return Backbone(blocks, nn.Linear(prev, num_classes), prev, spec)


class RawInput(nn.Module):
    """Raw inputs as one standardised vector: images pooled to ``side`` px with ``channels`` channels."""

    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        self.channels = channels
        self.side = side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            if x.shape[1] != self.channels:  # grey <-> colour, as the image loaders match them
                x = x.expand(-1, self.channels, -1, -1) if x.shape[1] == 1 else x.mean(1, keepdim=True)
            if x.shape[-2:] != (self.side, self.side):
                x = nn.functional.adaptive_avg_pool2d(x, self.side)
        return torch.flatten(x, 1)


def linear_input_dim(spec: ModelSpec) -> int:
    """The length of the ``linear`` model's input vector for ``spec``."""
    if spec.input_kind == "features":
        return int(spec.input_shape[0])
    c, h = int(spec.input_shape[0]), int(spec.input_shape[-1])
    side = min(h, LINEAR_MAX_SIDE)
    return c * side * side


def _linear(spec: ModelSpec, num_classes: int) -> Backbone:
    d = linear_input_dim(spec)
    if spec.input_kind == "features":
        block = nn.Sequential(RawInput(1, 0), Standardize(d))
    else:
        side = min(int(spec.input_shape[-1]), LINEAR_MAX_SIDE)
        block = nn.Sequential(RawInput(int(spec.input_shape[0]), side), Standardize(d))
    return Backbone([block], nn.Linear(d, num_classes), d, spec)


def normalisation(spec: ModelSpec) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Input mean and std of a torchvision arch: its weights' (``options["preprocess"]``), else ImageNet's."""
    prep = spec.options.get("preprocess") or {}
    mean = tuple(float(v) for v in prep.get("mean", IMAGENET_MEAN))
    std = tuple(float(v) for v in prep.get("std", IMAGENET_STD))
    return mean, std


def _resnet(spec: ModelSpec, num_classes: int) -> Backbone:
    import torchvision

    net = getattr(torchvision.models, spec.arch)(weights=None, num_classes=num_classes)
    stem_in = ImageInput(3, *normalisation(spec))
    if spec.options.get("small_input"):
        net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        stem = nn.Sequential(stem_in, net.conv1, net.bn1, net.relu)
    else:
        stem = nn.Sequential(stem_in, net.conv1, net.bn1, net.relu, net.maxpool)
    blocks = [stem, net.layer1, net.layer2, net.layer3, nn.Sequential(net.layer4, net.avgpool)]
    return Backbone(blocks, net.fc, net.fc.in_features, spec)


def _staged(spec: ModelSpec, num_classes: int) -> Backbone:
    import torchvision

    net = getattr(torchvision.models, spec.arch)(weights=None, num_classes=num_classes)
    feats = list(net.features.children())
    # Group feature modules into stages by output resolution, probing with a dummy input.
    size = max(32, spec.input_shape[-1])
    x = torch.zeros(1, 3, size, size)
    groups: list[list[nn.Module]] = [[]]
    res = size
    net.eval()
    with torch.no_grad():
        for m in feats:
            x = m(x)
            if x.shape[-1] < res and groups[-1]:
                groups.append([])
            res = x.shape[-1]
            groups[-1].append(m)
    groups[0].insert(0, ImageInput(3, *normalisation(spec)))
    blocks: list[nn.Module] = [nn.Sequential(*g) for g in groups]
    blocks[-1] = nn.Sequential(*groups[-1], net.avgpool)
    head = net.classifier
    in_features = next(m for m in head.modules() if isinstance(m, nn.Linear)).in_features
    return Backbone(blocks, head, in_features, spec)


_BUILDERS: dict[str, Callable[[ModelSpec, int], Backbone]] = {
    "cnn": _cnn,
    "mlp": _mlp,
    "linear": _linear,
    "resnet18": _resnet,
    "resnet50": _resnet,
    "mobilenet_v3_small": _staged,
    "efficientnet_b0": _staged,
}


def build(spec: ModelSpec, num_classes: int, seed: int | None = None) -> Backbone:
    """A randomly initialised Backbone for ``spec`` with a ``num_classes`` head."""
    if spec.arch not in _BUILDERS:
        raise InputError(f"unknown architecture {spec.arch!r}; known: {', '.join(ARCHS)}")
    if spec.arch == "mlp" and spec.input_kind != "features":
        raise InputError("the mlp model is for feature tables; images need cnn or a torchvision arch")
    if spec.arch not in ("mlp", "linear") and spec.input_kind != "images":
        raise InputError(f"{spec.arch} takes images; feature tables need --model mlp")
    if seed is not None:
        torch.manual_seed(seed)
    return _BUILDERS[spec.arch](spec, num_classes)
