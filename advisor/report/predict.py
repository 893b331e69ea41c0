"""Predict with an exported model on new data of the kind it was trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from advisor.errors import InputError
from advisor.report.export import Exported, load_export


def load_input(exported: Exported, path: str | Path, label_column: str = "label") -> Any:
    """Load ``path`` as a Domain shaped for the model; labels are kept when present."""
    from advisor.data.loaders import ImagePrep, load_domain

    spec = exported.meta["spec"]
    shape = tuple(spec["input_shape"])
    p = Path(path)
    image_size = shape[-1] if spec["input_kind"] == "images" else None
    # the training's preprocessing: a torchvision weights entry's resize + centre crop, else a square resize
    pre = (spec.get("options") or {}).get("preprocess") or {}
    prep = ImagePrep(int(shape[-1]), pre.get("resize"), str(pre.get("interpolation", "bilinear")))
    if spec["input_kind"] == "images" and p.is_file() and p.suffix.lower() not in {".npz", ".csv"}:
        return _single_image(p, shape, prep)
    geometry = {"image_size": image_size, "resize": prep.resize, "interpolation": prep.interpolation}
    try:
        domain = load_domain(p, name="input", label_column=label_column, labelled=True, **geometry)
    except InputError:
        domain = load_domain(p, name="input", label_column=label_column, labelled=False, **geometry)
    kind = "images" if domain.X.ndim == 4 else "features"
    if kind != spec["input_kind"]:
        raise InputError(f"{path} holds {kind} but the model takes {spec['input_kind']}")
    if kind == "features" and domain.X.shape[1] != shape[0]:
        raise InputError(f"{path} has {domain.X.shape[1]} features per row; the model takes {shape[0]}")
    if kind == "images":
        from advisor.data.loaders import match_channels

        domain = match_channels([domain], shape[0], average_to_grey=True)[0]
    return domain


def _single_image(path: Path, shape: tuple[int, ...], prep: Any) -> Any:
    from advisor.data.domain import Domain
    from advisor.data.loaders import open_image

    with open_image(path) as im:
        im = prep.apply(im.convert("L" if shape[0] == 1 else "RGB"))
        arr = np.asarray(im, dtype=np.float32) / 255.0
    arr = arr[None, None] if arr.ndim == 2 else arr.transpose(2, 0, 1)[None]
    return Domain("input", arr, None, (), "images", str(path))


def predict_path(model_path: str | Path, input_path: str | Path, top_k: int = 1, label_column: str = "label",
                 device: str = "cpu") -> dict[str, Any]:
    """Class names with probabilities for every sample; the accuracy when labels are present."""
    exported = load_export(model_path)
    domain = load_input(exported, input_path, label_column)
    proba = exported.predict_proba(domain.X, device)
    classes = exported.classes
    k = max(1, min(top_k, len(classes)))
    order = np.argsort(-proba, axis=1)[:, :k]
    preds = [{"top": [{"class": classes[j], "probability": float(proba[i, j])} for j in order[i]]}
             for i in range(len(proba))]
    out: dict[str, Any] = {"model": str(model_path), "input": str(input_path), "predictions": preds,
                           "score": None, "labels": None}
    if domain.y is not None and domain.classes:
        labels = [domain.classes[int(v)] for v in domain.y]
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted(set(labels) - set(index))
        if unknown:
            raise InputError(f"labels {unknown[:5]} of {input_path} are not classes of the model")
        y = np.array([index[c] for c in labels])
        out["labels"] = labels
        out["score"] = float(np.mean(y == order[:, 0]))
    return out
