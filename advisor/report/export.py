"""Export a trained target model (state dict + JSON metadata + Markdown model card) and load it back.

Files, for ``--export model.pt``: ``model.pt`` (a state dict of tensors only, read back with
``torch.load(weights_only=True)``), ``model.json`` (architecture and blocks, input kind and size
with the resize, crop and normalisation images take (``input_shape``, ``input``), class names,
strategy and parameters, scores, data fingerprints, versions, and the SHA-256 of the weights file)
and ``model.md`` (the model card). No pickled Python objects.

What decides a prediction (architecture and input shape, normalisation options, blocks, classes)
is also hashed into the weights file itself (``METADATA_DIGEST_KEY``, a uint8 tensor), so an edit
of ``model.json`` that the weights' SHA-256 cannot see (reversed class names, a changed input
shape) is refused on load: updating it would mean rewriting the weights file too.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from advisor import __version__
from advisor.errors import AdvisorFailure, InputError, first_line

EXPORT_FORMAT = 2
#: State-dict entry holding the SHA-256 of the metadata that decides predictions.
METADATA_DIGEST_KEY = "_advisor.metadata_sha256"
#: Metadata fields covered by that digest.
COVERED_FIELDS = ("format", "spec", "blocks", "feature_dim", "num_classes", "classes")
#: Bounds of an export's ``input_shape``: a side of an image, a feature table's width, their product.
MAX_IMAGE_SIDE = 4096
MAX_FEATURES = 1 << 20
MAX_INPUT_VALUES = 3 * MAX_IMAGE_SIDE * MAX_IMAGE_SIDE


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def metadata_digest(meta: dict[str, Any]) -> bytes:
    """SHA-256 of the covered metadata fields (canonical JSON: key order and spacing do not matter)."""
    doc = {k: meta.get(k) for k in COVERED_FIELDS}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).digest()


def check_input_shape(spec: Any, where: str | Path) -> None:
    """Refuse an input shape no model here was trained on (and that would allocate without bound)."""
    shape = tuple(spec.input_shape)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape):
        raise InputError(f"{where}: input_shape {list(shape)} must be positive whole numbers")
    if spec.input_kind == "images":
        ok = len(shape) == 3 and shape[0] in (1, 3) and max(shape[1:]) <= MAX_IMAGE_SIDE
        bound = f"[1 or 3, H, W] with H and W at most {MAX_IMAGE_SIDE}"
    elif spec.input_kind == "features":
        ok = len(shape) == 1 and shape[0] <= MAX_FEATURES
        bound = f"[d] with d at most {MAX_FEATURES}"
    else:
        raise InputError(f"{where}: input_kind {spec.input_kind!r} is neither images nor features")
    if not ok or int(np.prod(shape)) > MAX_INPUT_VALUES:
        raise InputError(f"{where}: input_shape {list(shape)} is out of bounds for {spec.input_kind} ({bound})")


def paths_for(path: str | Path) -> tuple[Path, Path, Path]:
    """(weights, metadata, model card) paths for an export named ``path``."""
    p = Path(path)
    if p.suffix != ".pt":
        p = p.with_name(p.name + ".pt")
    return p, p.with_suffix(".json"), p.with_suffix(".md")


def export_model(model: Any, path: str | Path, meta: dict[str, Any]) -> Path:
    """Write ``model`` (a Backbone) and its metadata; returns the weights path."""
    import torch

    weights, meta_path, card = paths_for(path)
    try:
        weights.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot write export to {weights.parent}: {exc.strerror}") from exc
    full = {
        "format": EXPORT_FORMAT,
        "spec": model.spec.to_json(),
        "input_shape": list(model.spec.input_shape),
        "input": input_metadata(model),
        "blocks": model.depth,
        "feature_dim": model.feature_dim,
        "num_classes": int(model.head.out_features),
        "weights_file": weights.name,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": {"advisor": __version__, "torch": torch.__version__},
        **meta,
    }
    full = json.loads(json.dumps(full, default=str))  # the digest hashes what model.json will hold
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    state[METADATA_DIGEST_KEY] = torch.tensor(list(metadata_digest(full)), dtype=torch.uint8)
    torch.save(state, weights)
    full["weights_sha256"] = _sha256(weights)
    meta_path.write_text(json.dumps(full, indent=2, default=str) + "\n")
    card.write_text(model_card(full))
    return weights


def input_metadata(model: Any) -> dict[str, Any]:
    """How inputs reach ``model``: kind and shape; images: side, resize before the centre crop, normalisation.

    ``resize`` and ``interpolation`` come from the spec (a torchvision weights entry's preprocessing,
    see ``advisor.models.sources.weights_preprocess``); ``mean`` and ``std`` are the model's own
    first-block normalisation buffers (they are in the weights file).
    """
    spec = model.spec
    out: dict[str, Any] = {"kind": spec.input_kind, "shape": list(spec.input_shape)}
    if spec.input_kind != "images":
        return out
    from advisor.models.architectures import ImageInput

    prep = spec.options.get("preprocess") or {}
    first = next((m for m in model.modules() if isinstance(m, ImageInput)), None)
    out.update({
        "size": list(spec.input_shape[-2:]),
        "resize": prep.get("resize"),
        "interpolation": prep.get("interpolation", "bilinear"),
        "mean": None if first is None else [round(float(v), 4) for v in first.mean.flatten()],
        "std": None if first is None else [round(float(v), 4) for v in first.std.flatten()],
    })
    return out


def export_recommendation(doc: dict[str, Any], path: str | Path) -> Path:
    """Export the model of ``doc``'s recommended strategy (retrained on train+val by the run)."""
    rec = doc.get("recommendation")
    models = doc.get("_internal", {}).get("models", {})
    if not rec or rec["strategy"] not in models:
        raise AdvisorFailure("no recommended model to export (the run has no recommendation yet)")
    model = models[rec["strategy"]]
    meta = {
        "classes": list(doc["_internal"]["classes"]),
        "strategy": rec["strategy"],
        "params": rec["params"],
        "score": doc.get("score"),
        "val_score": rec.get("val_score"),
        "val_ci": rec.get("val_ci"),
        "test_score": rec.get("test_score"),
        "test_accuracy": rec.get("test_accuracy"),
        "test_gain": rec.get("test_gain"),
        "test_gain_ci": rec.get("test_gain_ci"),
        "verdict": rec.get("verdict"),
        "verdict_code": rec.get("verdict_code"),
        "trained_on": "target train + validation splits",
        "data_fingerprints": doc.get("run", {}).get("data_fingerprints", {}),
        "run": doc.get("run", {}).get("dir"),
    }
    return export_model(model, path, meta)


def model_card(meta: dict[str, Any]) -> str:
    spec = meta["spec"]
    ci = meta.get("test_gain_ci") or [None, None]
    lines = [
        f"# Model card: {meta.get('strategy', 'model')} ({spec['arch']})", "",
        f"- Created: {meta['created']} with Transfer Advisor {meta['versions']['advisor']}",
        f"- Architecture: {spec['arch']} cut into {meta['blocks']} blocks, input {spec['input_kind']} "
        f"of shape {tuple(spec['input_shape'])}",
        f"- Input: {_input_line(meta.get('input') or {})}",
        f"- Classes ({meta['num_classes']}): {', '.join(meta.get('classes', []))}",
        f"- Strategy: {meta.get('strategy')} with parameters {json.dumps(meta.get('params', {}))}",
        f"- Trained on: {meta.get('trained_on', '-')}",
        f"- Validation {meta.get('score')}: {meta.get('val_score')} (95% CI {meta.get('val_ci')})",
        f"- Test {meta.get('score')}: {meta.get('test_score')} (accuracy {meta.get('test_accuracy')})",
        f"- Gain over target-only training on test: {meta.get('test_gain')} (95% CI [{ci[0]}, {ci[1]}])",
        f"- Verdict: {meta.get('verdict_code')}: {meta.get('verdict', '')}",
        f"- Data fingerprints: {json.dumps(meta.get('data_fingerprints', {}))}",
        "",
        "Inputs: images are float tensors in [0, 1] (or uint8 in [0, 255]) resized and cropped as the Input",
        "line says (normalisation is inside the model); feature tables are passed as stored. `advisor predict`",
        "prepares images that way; or load with `advisor.report.export.load_export`.",
    ]
    return "\n".join(lines) + "\n"


def _input_line(inp: dict[str, Any]) -> str:
    if inp.get("kind") != "images":
        return f"{inp.get('kind', 'features')} of shape {tuple(inp.get('shape', ()))}, as stored"
    h, w = inp["size"]
    how = (f"shorter side resized to {inp['resize']} then centre-cropped" if inp.get("resize") else "resized")
    text = f"{h}x{w} px images ({how}, {inp.get('interpolation', 'bilinear')} interpolation)"
    if inp.get("mean") is not None:
        text += f", normalised inside the model with mean {tuple(inp['mean'])} and std {tuple(inp['std'])}"
    return text


@dataclass
class Exported:
    """A loaded export: the model and its metadata."""

    model: Any
    meta: dict[str, Any]

    @property
    def classes(self) -> list[str]:
        return list(self.meta["classes"])

    def predict_proba(self, X: np.ndarray, device: str = "cpu") -> np.ndarray:
        from advisor.search.training import predict_proba

        return predict_proba(self.model, X, device)


def load_export(path: str | Path) -> Exported:
    """Rebuild an exported model from its metadata and weights; one-line errors on any mismatch."""
    import torch

    from advisor.models.architectures import build
    from advisor.models.backbone import ModelSpec
    from advisor.models.sources import safe_load

    weights, meta_path, _ = paths_for(path)
    if not weights.exists():
        raise InputError(f"{weights} not found")
    if not meta_path.exists():
        raise InputError(f"{meta_path} not found: an export needs its JSON metadata beside the weights")
    try:
        meta = json.loads(meta_path.read_text())
        spec = ModelSpec.from_json(meta["spec"])
        num_classes = int(meta["num_classes"])
        classes = list(meta["classes"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{meta_path} is not valid export metadata ({type(exc).__name__}: {exc})") from exc
    if meta.get("format") != EXPORT_FORMAT:
        raise InputError(f"{meta_path} has export format {meta.get('format')!r}; expected {EXPORT_FORMAT}")
    if len(classes) != num_classes:
        raise InputError(f"{meta_path} lists {len(classes)} classes for a {num_classes}-class head")
    check_input_shape(spec, meta_path)
    if _sha256(weights) != meta.get("weights_sha256"):
        raise InputError(f"{weights} does not match its metadata (SHA-256 differs: edited or truncated)")
    state = safe_load(weights, "an exported state dict")
    digest = state.pop(METADATA_DIGEST_KEY, None) if isinstance(state, dict) else None
    if not isinstance(digest, torch.Tensor) or digest.numpy().tobytes() != metadata_digest(meta):
        raise InputError(f"{meta_path} does not match {weights.name}: classes, input shape, normalisation or "
                         "architecture were edited after export")
    model = build(spec, num_classes)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{weights} does not fit architecture {spec.arch}: {first_line(exc)}") from exc
    model.eval()
    return Exported(model, meta)
