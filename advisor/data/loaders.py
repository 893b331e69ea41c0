"""Load a ``Domain`` from disk, validating everything, so bad input fails before any training.

Supported inputs (see ``advisor.data.domain`` for the data convention):

- an ImageFolder directory: one sub-folder of images per class (class names are the sorted
  folder names). Every image is decoded once with Pillow, converted to RGB (or to greyscale
  ``L`` when every image is greyscale) and resized to ``image_size`` x ``image_size``; with
  ``resize`` (a torchvision weights entry's preprocessing) the shorter side is first resized to
  ``resize`` keeping the aspect ratio, then the centre ``image_size`` square is cropped. Pixels
  are kept as uint8 (see ``advisor.data.domain``: memory stays bounded, floats are made per batch).
  Unlabelled data may also be a flat folder of images (class folders are then ignored).
- a ``.npz`` feature table: ``X`` (n x d), ``y`` (optional when unlabelled), optional
  ``classes``.
- a ``.npz`` image array: ``X`` of shape n x h x w or n x h x w x c (c = 1, 3, or 4, whose
  alpha channel is dropped). Pixel rule: ``uint8`` is divided by 255; floats already in [0, 1]
  are kept; floats in [0, 255] with a maximum above 1 are divided by 255; anything else is
  refused (we do not guess a min-max rescaling, which would change the data per file).
- a ``.csv`` table: a header row; every column except the label column is a numeric feature.

Labels may be strings or integers and are mapped to contiguous class ids. With ``classes``
in an ``.npz``, integer labels index those names and string labels must be among them.
Positions in error messages: ``.npz`` rows and columns are 0-based array indices; ``.csv``
positions are file line numbers (the header is line 1) and column names.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advisor.data.domain import Domain
from advisor.errors import InputError

#: Largest image (in pixels) read before decoding; Pillow's default limit (about 89 megapixels)
#: unless this variable says otherwise. Larger images are refused as possible decompression bombs.
MAX_IMAGE_PIXELS_ENV = "TRANSFER_ADVISOR_MAX_IMAGE_PIXELS"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")
DEFAULT_IMAGE_SIZE = 32


def load_domain(
    path: str | Path,
    *,
    name: str,
    label_column: str = "label",
    image_size: int | None = None,
    labelled: bool = True,
    resize: int | None = None,
    interpolation: str = "bilinear",
) -> Domain:
    """Load and validate one data set; any problem raises a one-line ``InputError``.

    ``image_size`` resizes images to a square of that side; ``None`` keeps an ``.npz`` image
    array's own size and uses ``DEFAULT_IMAGE_SIZE`` for an ImageFolder (its images may differ).
    ``resize`` (image files only): resize the shorter side to it, then centre-crop ``image_size``
    (torchvision's ``Resize`` + ``CenterCrop``), with ``interpolation`` (``bilinear`` or ``bicubic``).
    """
    p = Path(path).expanduser()
    if image_size is not None and image_size < 1:
        raise InputError(f"image size must be a positive number of pixels, got {image_size}")
    if not p.exists():
        raise InputError(f"{name}: path not found: {p}")
    if p.is_dir():
        prep = ImagePrep(image_size or DEFAULT_IMAGE_SIZE, resize, interpolation)
        return _load_image_folder(p, name, prep, labelled)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return _load_npz(p, name, image_size, labelled)
    if suffix == ".csv":
        return _load_csv(p, name, label_column, labelled)
    raise InputError(
        f"{name}: unsupported input {p}: expected an ImageFolder directory, a .npz or a .csv file"
    )


def check_compatible(source: Domain, target: Domain) -> None:
    """Refuse a source and target that one model cannot take (kind or feature dimension)."""
    if source.kind != target.kind:
        raise InputError(
            f"{source.name} holds {source.kind} but {target.name} holds {target.kind}; "
            "both must be images or both feature tables"
        )
    if source.kind == "features" and source.X.shape[1] != target.X.shape[1]:
        raise InputError(
            f"feature dimensions differ: {source.name} has {source.X.shape[1]} features, "
            f"{target.name} has {target.X.shape[1]}"
        )
    if source.kind == "images" and source.X.shape[2:] != target.X.shape[2:]:
        raise InputError(
            f"image sizes differ: {source.name} is {_hw(source)}, {target.name} is {_hw(target)}; "
            "load both with the same image size"
        )


def match_channels(
    domains: list[Domain | None], channels: int | None = None, average_to_grey: bool = False
) -> list[Domain | None]:
    """Give every image domain the same channel count (greyscale is repeated to RGB when mixed).

    ``channels`` forces a count (a model's); RGB data cannot become greyscale and is refused,
    unless ``average_to_grey`` (prediction with a greyscale model: the channels' mean).
    """
    present = [d for d in domains if d is not None and d.kind == "images"]
    if not present:
        return domains
    want = channels or max(d.X.shape[1] for d in present)
    out: list[Domain | None] = []
    for d in domains:
        if d is None or d.kind != "images" or d.X.shape[1] == want:
            out.append(d)
        elif d.X.shape[1] == 1 and want == 3:
            out.append(Domain(d.name, np.repeat(d.X, 3, axis=1), d.y, d.classes, d.kind, d.origin))
        elif d.X.shape[1] == 3 and want == 1 and average_to_grey:
            grey = d.X.mean(1, keepdims=True, dtype=np.float32)
            grey = np.round(grey).astype(np.uint8) if d.X.dtype == np.uint8 else grey
            out.append(Domain(d.name, grey, d.y, d.classes, d.kind, d.origin))
        else:
            raise InputError(f"{d.name} has {d.X.shape[1]}-channel images but {want} channels are needed")
    return out


def _hw(d: Domain) -> str:
    return "x".join(str(s) for s in d.X.shape[2:])


# --------------------------------------------------------------------------- labels


def encode_labels(
    raw: np.ndarray, classes: tuple[str, ...] | None, where: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Map raw labels (strings or integers) to contiguous int64 ids and class names."""
    raw = np.asarray(raw)
    if raw.ndim != 1:
        raise InputError(f"{where}: labels must be one-dimensional, got shape {raw.shape}")
    if raw.dtype.kind in "fc":
        bad = ~np.isfinite(raw) | (raw != np.round(raw))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"{where}: label at row {i} is {raw[i].item()!r}, not a class id or name")
        raw = raw.astype(np.int64)
    if raw.dtype.kind in "iu":
        if classes is not None:
            bad = (raw < 0) | (raw >= len(classes))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise InputError(
                    f"{where}: label {int(raw[i])} at row {i} does not index the {len(classes)} classes"
                )
            return raw.astype(np.int64), classes
        values, y = np.unique(raw, return_inverse=True)
        return y.astype(np.int64), tuple(str(int(v)) for v in values)
    if raw.dtype.kind in "USO":
        names = np.array([str(v) for v in raw])
        if classes is not None:
            index = {c: i for i, c in enumerate(classes)}
            missing = [n for n in names if n not in index]
            if missing:
                raise InputError(f"{where}: label {missing[0]!r} is not in classes")
            return np.array([index[n] for n in names], dtype=np.int64), classes
        values, y = np.unique(names, return_inverse=True)
        return y.astype(np.int64), tuple(str(v) for v in values)
    raise InputError(f"{where}: labels of type {raw.dtype} are neither class ids nor names")


# --------------------------------------------------------------------------- image folders


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        f for f in folder.iterdir()
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS
    )


@dataclass(frozen=True)
class ImagePrep:
    """How a decoded image becomes model input: square ``size`` px, after ``resize`` + centre crop if set."""

    size: int
    resize: int | None = None
    interpolation: str = "bilinear"

    def apply(self, im: Any) -> Any:
        """The Pillow image resized (and cropped) to ``size`` x ``size``."""
        from PIL import Image

        modes = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
                 "nearest": Image.Resampling.NEAREST}
        if self.interpolation not in modes:
            raise InputError(f"unknown interpolation {self.interpolation!r}; known: {', '.join(modes)}")
        mode = modes[self.interpolation]
        if self.resize is None:
            return im.resize((self.size, self.size), mode)
        w, h = im.size
        short, long = (w, h) if w <= h else (h, w)
        new_short, new_long = self.resize, max(1, int(self.resize * long / short))
        new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
        im = im.resize((new_w, new_h), mode)
        if new_w < self.size or new_h < self.size:  # crop larger than the resized image: square resize
            return im.resize((self.size, self.size), mode)
        left = int(round((new_w - self.size) / 2.0))
        top = int(round((new_h - self.size) / 2.0))
        return im.crop((left, top, left + self.size, top + self.size))


def _load_image_folder(root: Path, name: str, prep: ImagePrep, labelled: bool) -> Domain:
    subdirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    loose = _image_files(root)
    if not subdirs and not loose:
        raise InputError(f"{name}: directory {root} is empty: expected class folders of images")
    files: list[Path] = []
    labels: list[int] = []
    classes: tuple[str, ...] = ()
    if labelled:
        if not subdirs:
            raise InputError(
                f"{name}: {root} has images but no class folders; put each class's images in "
                "a folder named after the class"
            )
        if loose:
            raise InputError(
                f"{name}: {loose[0]} lies outside the class folders of {root}; move it into one"
            )
        classes = tuple(d.name for d in subdirs)
        for c, d in enumerate(subdirs):
            found = _image_files(d)
            if not found:
                raise InputError(f"{name}: class folder {d} has no images ({', '.join(IMAGE_EXTENSIONS)})")
            files += found
            labels += [c] * len(found)
    else:
        files = list(loose)
        for d in subdirs:
            files += _image_files(d)
        if not files:
            raise InputError(f"{name}: no images found in {root} or its folders")
    X = decode_images(files, prep)
    y = np.array(labels, dtype=np.int64) if labelled else None
    return Domain(name, X, y, classes, "images", str(root))


def max_image_pixels() -> int:
    """The pixel limit of one image: ``$TRANSFER_ADVISOR_MAX_IMAGE_PIXELS`` or Pillow's default."""
    from PIL import Image

    raw = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    if not raw:
        return int(Image.MAX_IMAGE_PIXELS or 89_478_485)
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"{MAX_IMAGE_PIXELS_ENV} must be a positive whole number of pixels, not {raw!r}")
    return value


@contextlib.contextmanager
def open_image(path: Path) -> Iterator[Any]:
    """``PIL.Image.open`` with every problem as a one-line InputError, the size limit included.

    Pillow only warns (on stderr, two lines) between its limit and twice it; here any image over
    ``max_image_pixels()`` is refused at open, before its pixels are decoded.
    """
    from PIL import Image, UnidentifiedImageError

    limit = max_image_pixels()
    saved = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = limit
            try:
                im = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
            with im:
                yield im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1))} pixels" if found else "its size"
        raise InputError(f"cannot read image {path}: {size} is over the limit of {limit} pixels (a decompression "
                         f"bomb?); set {MAX_IMAGE_PIXELS_ENV} to allow larger images") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"cannot read image {path}: {exc.__class__.__name__}: {exc}") from exc


def decode_images(files: list[Path], prep: ImagePrep | int) -> np.ndarray:
    """Decode every file once into uint8 ``N x C x S x S`` (memory stays at the output size).

    Greyscale images are kept as one channel; if any image is colour, every image becomes RGB
    (a greyscale image's channel repeated, as Pillow's ``convert("RGB")`` does). The three-channel
    buffer is allocated once; an all-grey set is cut to its first channel at the end.
    """
    if isinstance(prep, int):
        prep = ImagePrep(prep)
    size = prep.size
    X = np.empty((len(files), 3, size, size), dtype=np.uint8)
    grey = np.ones(len(files), dtype=bool)
    for i, f in enumerate(files):
        with open_image(f) as im:
            im.load()
            grey[i] = im.mode in GREY_MODES
            pixels = prep.apply(_to_8bit(im).convert("L" if grey[i] else "RGB"))
        arr = np.asarray(pixels, dtype=np.uint8)
        X[i] = arr[None] if grey[i] else arr.transpose(2, 0, 1)
    return X[:, :1].copy() if grey.all() else X


def _to_8bit(im: Any) -> Any:
    """16-bit and float greyscale images scaled to 8 bits (Pillow would clip them)."""
    from PIL import Image

    if im.mode not in ("I", "I;16", "F"):
        return im
    arr = np.asarray(im, dtype=np.float32)
    hi = 65535.0 if im.mode != "F" and arr.max() > 255 else 255.0
    return Image.fromarray(np.clip(arr / hi * 255.0, 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------- arrays and tables


def _load_npz(path: Path, name: str, image_size: int | None, labelled: bool) -> Domain:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # zip, pickle and format errors all mean the same to the user
        raise InputError(f"{name}: cannot read {path} as .npz: {exc}") from exc
    if "X" not in arrays:
        found = ", ".join(sorted(arrays)) or "nothing"
        raise InputError(f"{name}: {path} has no array 'X' (found: {found})")
    X = arrays["X"]
    if X.dtype.kind not in "biuf":
        raise InputError(f"{name}: X in {path} has type {X.dtype}; expected numbers")
    if len(X) == 0:
        raise InputError(f"{name}: {path} has no rows")
    classes = None
    if "classes" in arrays:
        cl = arrays["classes"]
        if cl.ndim != 1 or len(cl) == 0:
            raise InputError(f"{name}: classes in {path} must be a non-empty list of names")
        classes = tuple(str(c) for c in cl)
    y = None
    if labelled:
        if "y" not in arrays:
            raise InputError(f"{name}: {path} has no labels 'y'")
        if len(arrays["y"]) != len(X):
            raise InputError(f"{name}: {path} has {len(X)} rows in X but {len(arrays['y'])} labels in y")
        y, classes = encode_labels(arrays["y"], classes, f"{name}: {path}")
    if X.ndim == 2:
        X = X.astype(np.float32)
        _check_finite(X, f"{name}: {path}", lambda i: f"row {i}", lambda j: f"column {j}")
        return Domain(name, X, y, classes or (), "features", str(path))
    if X.ndim in (3, 4):
        return Domain(name, _image_array(X, path, name, image_size), y, classes or (), "images", str(path))
    raise InputError(
        f"{name}: X in {path} has shape {X.shape}; expected n x d (a table), "
        "n x h x w or n x h x w x c (images)"
    )


def _image_array(X: np.ndarray, path: Path, name: str, image_size: int | None) -> np.ndarray:
    """n x h x w [x c] pixels -> float32 n x c x s x s in [0, 1] (rule in the module docstring)."""
    if X.ndim == 3:
        X = X[..., None]
    c = X.shape[-1]
    if c not in (1, 3, 4):
        raise InputError(f"{name}: images in {path} have {c} channels (last axis); expected 1, 3 or 4")
    if c == 4:
        X = X[..., :3]
    if X.dtype == np.uint8:
        out = X.astype(np.float32) / 255.0
    else:
        out = X.astype(np.float32)
        finite = np.isfinite(out)
        if not finite.all():
            i = int(np.argwhere(~finite)[0][0])
            raise InputError(f"{name}: image {i} in {path} has NaN or infinite pixels")
        lo, hi = float(out.min()), float(out.max())
        if lo >= 0.0 and hi <= 1.0:
            pass
        elif lo >= 0.0 and hi <= 255.0:
            out /= 255.0
        else:
            raise InputError(
                f"{name}: pixels in {path} range over [{lo:g}, {hi:g}]; expected uint8, [0, 1] or [0, 255]"
            )
    out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    if image_size is not None and out.shape[2:] != (image_size, image_size):
        import torch
        import torch.nn.functional as F

        t = F.interpolate(torch.from_numpy(out), size=(image_size, image_size), mode="bilinear",
                          align_corners=False, antialias=True)
        out = t.clamp_(0.0, 1.0).numpy()
    return out


def _check_finite(
    X: np.ndarray, where: str, row: Callable[[int], str], column: Callable[[int], str]
) -> None:
    """Refuse NaN or inf, naming the first bad row and column."""
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        kind = "NaN" if math.isnan(float(X[i, j])) else "an infinite value"
        raise InputError(f"{where}: {kind} at {row(i)}, {column(j)}")


def _load_csv(path: Path, name: str, label_column: str, labelled: bool) -> Domain:
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{name}: cannot read {path}: {exc}") from exc
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        raise InputError(f"{name}: {path} is empty")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if not body:
        raise InputError(f"{name}: {path} has a header but no rows")
    if label_column in header:
        label_idx: int | None = header.index(label_column)
    elif labelled:
        raise InputError(
            f"{name}: {path} has no label column {label_column!r} (columns: {', '.join(header)}); "
            "name it with --label-column"
        )
    else:
        label_idx = None
    feature_idx = [j for j in range(len(header)) if j != label_idx]
    if not feature_idx:
        raise InputError(f"{name}: {path} has no feature columns besides {label_column!r}")
    X = np.empty((len(body), len(feature_idx)), dtype=np.float32)
    labels: list[str] = []
    for i, row in enumerate(body):
        line = i + 2
        if len(row) != len(header):
            raise InputError(f"{name}: {path} line {line} has {len(row)} cells; the header has {len(header)}")
        for k, j in enumerate(feature_idx):
            cell = row[j].strip()
            try:
                X[i, k] = float(cell) if cell else math.nan
            except ValueError:
                raise InputError(
                    f"{name}: {path} line {line}, column {header[j]!r}: {cell!r} is not a number"
                ) from None
        if label_idx is not None:
            labels.append(row[label_idx].strip())
    _check_finite(X, f"{name}: {path}", lambda i: f"line {i + 2}",
                  lambda k: f"column {header[feature_idx[k]]!r}")
    y = None
    classes: tuple[str, ...] = ()
    if labelled:
        empty = [i for i, v in enumerate(labels) if not v]
        if empty:
            raise InputError(f"{name}: {path} line {empty[0] + 2} has an empty {label_column!r}")
        raw: np.ndarray = np.array(labels)
        if all(_is_int(v) for v in labels):
            raw = np.array([int(v) for v in labels], dtype=np.int64)
        y, classes = encode_labels(raw, None, f"{name}: {path}")
    return Domain(name, X, y, classes, "features", str(path))


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True
