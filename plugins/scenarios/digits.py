"""Shared helpers of the built-in digits scenarios: data, image transforms, seeded splits.

The data is scikit-learn's bundled ``digits`` set (1797 8x8 images of 0-9, no download),
upsampled bilinearly to 16x16 and scaled to [0, 1]: the Domain convention (float32
``N x 1 x 16 x 16``, int64 labels indexing the class names "0".."9").

Only numpy and scipy are imported here (no torch, no sklearn at import time), so the
registry can import the scenarios when the CLI starts without slowing it down.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

CLASSES: tuple[str, ...] = tuple(str(d) for d in range(10))
SIZE = 16  # side of the upsampled images


@dataclass(frozen=True)
class SplitSizes:
    """Per-class sizes of one scenario's pools and splits (the target test takes the rest)."""

    source: int  # source images per class
    train: int  # labelled target train images per class
    val: int  # target validation images per class


def _digits_file() -> str | None:
    """Path of scikit-learn's bundled ``digits.csv.gz``, found without importing sklearn."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "datasets", "data", "digits.csv.gz")
    return path if os.path.exists(path) else None


@functools.lru_cache(maxsize=1)
def load_digits_16() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as float32 ``N x 16 x 16`` in [0, 1] and int64 labels (memoised).

    Reads the file behind ``sklearn.datasets.load_digits`` directly: importing sklearn
    takes seconds, the file a fraction of one. Falls back to ``load_digits``.
    """
    path = _digits_file()
    if path is not None:
        table = np.loadtxt(path, delimiter=",")
        images, labels = table[:, :64].reshape(-1, 8, 8), table[:, 64]
    else:  # pragma: no cover - a sklearn without the bundled csv
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, labels = bunch.images, bunch.target
    x = upsample(images.astype(np.float32) / 16.0, SIZE)
    x.setflags(write=False)
    y = labels.astype(np.int64)
    y.setflags(write=False)
    return x, y


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Bilinear resize matrix (``n_out x n_in``), half-pixel centres like ``align_corners=False``."""
    pos = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] += 1 - frac
    m[np.arange(n_out), hi] += frac
    return m


def upsample(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of ``N x h x w`` images to ``N x size x size`` (float32)."""
    r = _interp_matrix(images.shape[1], size)
    c = _interp_matrix(images.shape[2], size)
    return np.einsum("ij,njk,lk->nil", r, images, c).astype(np.float32)


def blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each image (not across images)."""
    from scipy import ndimage

    return ndimage.gaussian_filter(images, sigma=(0, sigma, sigma))


def to_unit(images: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and add the channel axis: float32 ``N x 1 x H x W``."""
    return np.clip(images, 0.0, 1.0).astype(np.float32)[:, None]


def split_pools(y: np.ndarray, sizes: SplitSizes, seed: int) -> dict[str, np.ndarray]:
    """Disjoint, seeded, per-class index sets: ``source``, ``train``, ``val``, ``test``.

    Per class: ``sizes.source`` go to the source pool, then ``sizes.train`` and ``sizes.val``
    to the target train and validation splits; the rest of the class is target test.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"source": [], "train": [], "val": [], "test": []}
    for c in range(len(CLASSES)):
        idx = rng.permutation(np.flatnonzero(y == c))
        cuts = np.cumsum([sizes.source, sizes.train, sizes.val])
        if cuts[-1] >= len(idx):
            raise ValueError(f"class {c} has {len(idx)} images; the split needs more than {cuts[-1]}")
        for name, part in zip(parts, np.split(idx, cuts), strict=True):
            parts[name].append(part)
    return {name: np.sort(np.concatenate(p)) for name, p in parts.items()}


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of ``range(n)`` with no fixed point (every label moves)."""
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm
