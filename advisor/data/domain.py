"""Domains (one labelled or unlabelled data set) and the seeded target split.

One data convention runs through the whole pipeline (as in skada):

- images: ``X`` is ``N x C x H x W``, already resized for the model, either float32 in [0, 1] or
  uint8 in [0, 255] (decoded image files are kept as uint8, a quarter of the memory: 3,000 photos
  at 224 px take 450 MB instead of 1.8 GB). Whoever reads images converts them per batch
  (``as_float`` here, ``advisor.device.to_float`` for tensors); normalisation belongs to the model
  (its first block), not to the data;
- feature tables: ``X`` is float32 ``N x D`` exactly as stored;
- ``y`` is int64 class ids indexing ``classes`` (names), or ``None`` when unlabelled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from advisor.errors import InputError

DomainKind = Literal["images", "features"]

#: Documented defaults for splitting a user's target (fractions of each class).
DEFAULT_VAL_FRACTION = 0.2
DEFAULT_TEST_FRACTION = 0.3
MIN_PER_CLASS_PER_SPLIT = 2


def as_float(X: np.ndarray) -> np.ndarray:
    """Inputs in the float convention: uint8 images divided by 255, anything else as float32.

    Use it on a batch or a subset (``as_float(d.X[idx])``): on a whole uint8 image set it makes
    the float32 copy the uint8 storage avoids.
    """
    if X.dtype == np.uint8:
        return X.astype(np.float32) / np.float32(255.0)
    return np.asarray(X, dtype=np.float32)


@dataclass(frozen=True, eq=False)
class Domain:
    """One data set: inputs, optional labels and the class names the labels index."""

    name: str
    X: np.ndarray
    y: np.ndarray | None
    classes: tuple[str, ...]
    kind: DomainKind
    origin: str = ""
    _fp: list = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.y is not None and len(self.y) != len(self.X):
            raise InputError(
                f"{self.name}: {len(self.X)} inputs but {len(self.y)} labels"
            )

    def __len__(self) -> int:
        return len(self.X)

    @property
    def labelled(self) -> bool:
        return self.y is not None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])

    @property
    def fingerprint(self) -> str:
        """A content hash of inputs, labels and class names (cached after the first call)."""
        if not self._fp:
            h = hashlib.sha256()
            h.update(str(self.X.dtype).encode() + str(self.X.shape).encode())
            h.update(np.ascontiguousarray(self.X).tobytes())
            if self.y is not None:
                h.update(np.ascontiguousarray(self.y, dtype=np.int64).tobytes())
            h.update("\x1f".join(self.classes).encode())
            self._fp.append(h.hexdigest()[:16])
        return self._fp[0]

    def class_counts(self) -> dict[str, int]:
        """Samples per class name (empty for unlabelled data)."""
        if self.y is None:
            return {}
        counts = np.bincount(self.y, minlength=len(self.classes))
        return {c: int(n) for c, n in zip(self.classes, counts, strict=True)}

    def subset(self, idx: np.ndarray, name: str | None = None) -> Domain:
        """A new domain with the rows ``idx`` (same classes)."""
        return Domain(
            name=name or self.name,
            X=self.X[idx],
            y=None if self.y is None else self.y[idx],
            classes=self.classes,
            kind=self.kind,
            origin=self.origin,
        )

    def unlabelled(self, name: str | None = None) -> Domain:
        """The same inputs without labels."""
        return Domain(name or self.name, self.X, None, self.classes, self.kind, self.origin)

    def concat(self, other: Domain, name: str | None = None) -> Domain:
        """Rows of ``self`` then ``other`` (same classes and kind)."""
        if other.classes != self.classes or other.kind != self.kind:
            raise InputError(f"cannot join {self.name} and {other.name}: different classes")
        y = None
        if self.y is not None and other.y is not None:
            y = np.concatenate([self.y, other.y])
        return Domain(
            name or self.name,
            np.concatenate([self.X, other.X]),
            y,
            self.classes,
            self.kind,
            self.origin,
        )


@dataclass(frozen=True)
class TargetSplits:
    """The labelled target, split once: train and val for search, test for the final score."""

    train: Domain
    val: Domain
    test: Domain

    def describe(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def split_target(
    target: Domain,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = 0,
) -> TargetSplits:
    """Split a labelled target stratified by class, seeded.

    Each class gives ``round(fraction * n_class)`` samples to val and test, but at least
    ``MIN_PER_CLASS_PER_SPLIT`` to each of train, val and test; a class too small for that
    is refused, naming it.
    """
    if target.y is None:
        raise InputError(f"{target.name}: the target needs labels to be split")
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise InputError(
            "--val-fraction and --test-fraction must be in (0, 1) and sum to less than 1"
        )
    check_classes(target)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    need = 3 * MIN_PER_CLASS_PER_SPLIT
    for c, name in enumerate(target.classes):
        idx = np.flatnonzero(target.y == c)
        if len(idx) == 0:
            continue
        if len(idx) < need:
            raise InputError(
                f"class {name!r} of {target.name} has {len(idx)} samples; at least {need} are "
                f"needed ({MIN_PER_CLASS_PER_SPLIT} each for train, validation and test)"
            )
        idx = rng.permutation(idx)
        n_val = max(MIN_PER_CLASS_PER_SPLIT, round(val_fraction * len(idx)))
        n_test = max(MIN_PER_CLASS_PER_SPLIT, round(test_fraction * len(idx)))
        n_test = min(n_test, len(idx) - n_val - MIN_PER_CLASS_PER_SPLIT)
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    out = {k: target.subset(np.sort(np.concatenate(v)), f"{target.name}/{k}") for k, v in parts.items()}
    return TargetSplits(**out)


def check_classes(domain: Domain) -> None:
    """Refuse a labelled domain with fewer than two classes present."""
    if domain.y is None:
        return
    present = np.unique(domain.y)
    if len(present) < 2:
        only = domain.classes[int(present[0])] if len(present) else "none"
        raise InputError(
            f"{domain.name} has a single class ({only!r}); a classifier needs at least two"
        )
