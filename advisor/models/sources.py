"""The source model as a ``Backbone``: torchvision weights, a checkpoint, or pretrained here.

- ``torchvision_backbone``: a torchvision architecture with weights from a state-dict file
  (``--weights FILE``) or from the local torch hub cache (never downloaded). The state dict
  is mapped onto the block-cut model in parameter order (``advisor.models.architectures`` reuses the
  torchvision submodules in their original order), checking every shape.
- ``load_checkpoint`` / ``save_checkpoint``: this project's own files (spec, state dict,
  source classes), read with ``torch.load(..., weights_only=True)``.
- ``pretrain_source``: plain supervised training on the source data when no source model is
  given, cached by a hash of the data, the spec, the training settings and the seed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from advisor.data.domain import Domain
from advisor.errors import InputError, TrainingDiverged
from advisor.models.architectures import ARCHS, TORCHVISION_ARCHS, Standardize, build
from advisor.models.backbone import Backbone, ModelSpec

CHECKPOINT_FORMAT = "transfer-advisor-checkpoint"
CACHE_ENV = "TRANSFER_ADVISOR_CACHE"


# --------------------------------------------------------------------------- torchvision


def hub_weights_path(arch: str) -> Path:
    """Where torchvision keeps the default ImageNet weights of ``arch`` in the hub cache."""
    from torchvision.models import get_model_weights

    url = get_model_weights(arch).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def imagenet_classes(arch: str) -> tuple[str, ...]:
    """The ImageNet category names from torchvision's weights metadata (offline)."""
    from torchvision.models import get_model_weights

    return tuple(get_model_weights(arch).DEFAULT.meta["categories"])


def weights_file(arch: str, weights: str | Path | None) -> Path:
    """The weights file to use: ``weights`` if given, else the hub cache; it must exist."""
    if arch not in TORCHVISION_ARCHS:
        raise InputError(
            f"--weights is for torchvision architectures ({', '.join(TORCHVISION_ARCHS)}), not {arch!r}"
        )
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise InputError(f"weights file not found: {path}")
        return path
    path = hub_weights_path(arch)
    if not path.is_file():
        raise InputError(
            f"no pretrained weights for {arch} on disk: put {path.name} in {path.parent} "
            f"(torchvision's {arch} ImageNet file) or pass --weights FILE"
        )
    return path


def torchvision_backbone(
    arch: str,
    input_shape: tuple[int, ...],
    weights: str | Path | None,
    num_classes: int | None = None,
) -> Backbone:
    """A pretrained torchvision ``arch`` as a Backbone; the head size comes from the weights.

    ``num_classes``, when given, must match the weights' head. Source classes are the ImageNet
    categories for a 1000-class head, else ``"0"``, ``"1"``, ...
    """
    path = weights_file(arch, weights)
    state = safe_load(path, "a torchvision state dict")
    if not isinstance(state, dict) or not state or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        hint = " (a Transfer Advisor checkpoint: pass it with --model)" if _is_checkpoint(state) else ""
        raise InputError(f"{path} is not a state dict of tensors{hint}")
    head = [v for v in state.values() if v.dim() == 2]
    if not head:
        raise InputError(f"{path} has no linear layer; is it a {arch} state dict?")
    n_out = int(head[-1].shape[0])
    if num_classes is not None and num_classes != n_out:
        raise InputError(f"{path} has a {n_out}-class head, not {num_classes}")
    spec = ModelSpec(arch, "images", (3, *input_shape[-2:]), {})
    backbone = build(spec, n_out, seed=0)
    _load_in_order(backbone, state, path, arch)
    classes = imagenet_classes(arch) if n_out == 1000 else tuple(str(i) for i in range(n_out))
    backbone.source_classes = classes
    return backbone.eval()


def _load_in_order(backbone: Backbone, state: dict[str, torch.Tensor], path: Path, arch: str) -> None:
    """Copy torchvision's state dict into the block-cut model, entry by entry in order."""
    own = backbone.state_dict()
    # ImageInput's normalisation buffers (``.mean``, ``.std``) are ours, not torchvision's
    # (batch-norm statistics are ``running_mean`` / ``running_var``).
    keys = [k for k in own if not (k.endswith(".mean") or k.endswith(".std"))]
    if len(keys) != len(state):
        raise InputError(f"{path} has {len(state)} entries; a {arch} state dict has {len(keys)}")
    mapped = {}
    for ours, (theirs, value) in zip(keys, state.items(), strict=True):
        if own[ours].shape != value.shape:
            raise InputError(
                f"{path} does not fit {arch}: {theirs} has shape {tuple(value.shape)}, "
                f"expected {tuple(own[ours].shape)}"
            )
        mapped[ours] = value
    backbone.load_state_dict(mapped, strict=False)


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint file's content, read and checked (the model is built later)."""

    path: Path
    spec: ModelSpec
    state_dict: dict[str, torch.Tensor]
    source_classes: tuple[str, ...]


def save_checkpoint(backbone: Backbone, path: str | Path) -> Path:
    """Write ``backbone`` as a checkpoint ``load_checkpoint`` reads back (atomic replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "spec": json.dumps(backbone.spec.to_json()),
        "state_dict": {k: v.detach().cpu() for k, v in backbone.state_dict().items()},
        "source_classes": list(backbone.source_classes),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(doc, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint file; a missing, foreign or damaged file is an InputError."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"model file not found: {path}")
    doc = safe_load(path, "a Transfer Advisor checkpoint")
    if not _is_checkpoint(doc):
        raise InputError(
            f"{path} is not a Transfer Advisor checkpoint (expected spec, state_dict and source_classes)"
        )
    try:
        spec = ModelSpec.from_json(json.loads(doc["spec"]))
        classes = tuple(str(c) for c in doc["source_classes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: damaged checkpoint metadata: {exc}") from exc
    if spec.arch not in ARCHS:
        raise InputError(f"{path}: unknown architecture {spec.arch!r}; known: {', '.join(ARCHS)}")
    if not classes:
        raise InputError(f"{path}: checkpoint lists no source classes")
    return Checkpoint(path, spec, doc["state_dict"], classes)


def backbone_from_checkpoint(ckpt: Checkpoint) -> Backbone:
    """Build the checkpoint's architecture and load its weights (every key must fit)."""
    backbone = build(ckpt.spec, len(ckpt.source_classes), seed=0)
    try:
        backbone.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise InputError(f"{ckpt.path}: weights do not fit {ckpt.spec.arch}: {first[-1].strip()}") from exc
    backbone.source_classes = ckpt.source_classes
    return backbone.eval()


def load_checkpoint(path: str | Path) -> Backbone:
    """A Backbone from a checkpoint written by ``save_checkpoint``."""
    return backbone_from_checkpoint(read_checkpoint(path))


def _is_checkpoint(doc: Any) -> bool:
    return (
        isinstance(doc, dict)
        and doc.get("format") == CHECKPOINT_FORMAT
        and isinstance(doc.get("spec"), str)
        and isinstance(doc.get("state_dict"), dict)
        and isinstance(doc.get("source_classes"), list)
    )


def safe_load(path: Path, what: str) -> Any:
    """``torch.load(weights_only=True)``; any failure is one InputError line, torch's warnings silenced."""
    try:
        with warnings.catch_warnings():
            # e.g. "Detected pickle protocol 4 in the checkpoint ...": two lines before our one-line error.
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors all mean "not a file we can read"
        raise InputError(f"cannot read {path} as {what}: {load_error_reason(exc)}") from exc


def load_error_reason(exc: BaseException) -> str:
    """One line saying why ``torch.load(weights_only=True)`` refused a file.

    Torch's refusal of a pickle is many lines; kept here: what its restricted unpickler met (the
    ``WeightsUnpickler error``) and why the file is not loaded anyway (arbitrary code execution).
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    if "Weights only load failed" not in text:
        first = text.splitlines()[0] if text else type(exc).__name__
        return first[:200]
    detail = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else ""
    found = next((line.strip() for line in detail.splitlines() if line.strip()), "")
    found = found.split(" Please use ")[0].split(". ")[0].rstrip(".")[:160]
    return (f"torch's safe loader (weights_only=True) refused it ({found or 'unsupported content'}); loading it "
            "without that check could run arbitrary code, so only plain tensors are read")


# --------------------------------------------------------------------------- pretraining


@dataclass(frozen=True)
class PretrainSettings:
    """The documented budget of pretraining on source data (plain supervised training)."""

    epochs: int
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    version: int = 1  # bump when the training loop changes, to invalidate caches


#: Epochs by input kind: small image sets converge in a few epochs; tables are cheap.
DEFAULT_PRETRAIN_EPOCHS = {"images": 5, "features": 40}


def cache_root() -> Path:
    """The user's cache folder: ``$TRANSFER_ADVISOR_CACHE`` or ``~/.cache/transfer-advisor``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "transfer-advisor"


def pretrain_key(source: Domain, spec: ModelSpec, settings: PretrainSettings, seed: int) -> str:
    """The cache key: data fingerprint, spec, training settings and seed."""
    doc = {"data": source.fingerprint, "spec": spec.to_json(), "settings": asdict(settings), "seed": seed}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:24]


def pretrain_source(
    source: Domain,
    spec: ModelSpec,
    *,
    seed: int = 0,
    device: str = "cpu",
    epochs: int | None = None,
    cache_dir: str | Path | None = None,
) -> tuple[Backbone, str]:
    """Train ``spec`` on the labelled source (or load it from the cache); returns it and a note.

    Adam (lr 1e-3, weight decay 1e-4), batch 64, ``DEFAULT_PRETRAIN_EPOCHS`` by input kind,
    no augmentation; deterministic for a seed on CPU. The model is returned on the CPU.
    """
    if source.y is None:
        raise InputError(f"{source.name} has no labels; a source model cannot be pretrained on it")
    settings = PretrainSettings(epochs=epochs or DEFAULT_PRETRAIN_EPOCHS[source.kind])
    folder = Path(cache_dir) if cache_dir is not None else cache_root() / "pretrained"
    path = folder / f"{pretrain_key(source, spec, settings, seed)}.pt"
    if path.is_file():
        try:
            backbone = load_checkpoint(path)
            if backbone.source_classes == source.classes:
                return backbone, f"loaded from cache {path}"
        except InputError:
            pass  # a damaged cache entry is retrained and overwritten
    backbone = _train(source, spec, settings, seed, device)
    save_checkpoint(backbone, path)
    unit = "images" if source.kind == "images" else "rows"
    note = (f"pretrained here on {source.name} ({len(source)} {unit}, {settings.epochs} epochs) "
            f"and cached at {path}")
    return backbone, note


def _train(source: Domain, spec: ModelSpec, settings: PretrainSettings, seed: int, device: str) -> Backbone:
    """Plain supervised training; the device path of ``advisor.search.training`` (no host wait per step).

    Inputs stay as stored (uint8 images too) and move to the device once; each batch is
    converted there. Permutations are drawn on the device, the loss runs under mixed precision
    (``autocast``) and is checked for NaN once per epoch.
    """
    from advisor.device import autocast, channels_last, grad_scaler, prepare_model, to_device_batch
    from advisor.features.cache import as_tensor, stored_tensor

    torch.manual_seed(seed)
    backbone = build(spec, source.num_classes, seed=seed)
    backbone.source_classes = source.classes
    X = stored_tensor(source.X)
    y = torch.from_numpy(np.asarray(source.y, dtype=np.int64))
    for module in backbone.modules():
        if isinstance(module, Standardize):
            module.set_stats(as_tensor(source.X))
            break
    prepare_model(backbone, device).train()
    last = channels_last(backbone)
    X, y = X.to(device), y.to(device)
    opt = torch.optim.Adam(backbone.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scaler = grad_scaler(device)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator(device=torch.device(device)).manual_seed(seed)
    n = len(X)
    for epoch in range(1, settings.epochs + 1):
        order = torch.randperm(n, generator=gen, device=torch.device(device))
        loss_sum = torch.zeros((), device=device)
        for start in range(0, n, settings.batch_size):
            idx = order[start : start + settings.batch_size]
            if len(idx) < 2 and n > 1:
                continue  # batch norm cannot train on a single sample
            xb, yb = to_device_batch(X[idx], device, last), y[idx]
            opt.zero_grad(set_to_none=True)
            with autocast(device):
                loss = loss_fn(backbone(xb).float(), yb)
            loss_sum = loss_sum + loss.detach()
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        if not torch.isfinite(loss_sum):  # one host sync per epoch
            raise TrainingDiverged(f"pretraining on {source.name} diverged (loss {float(loss_sum)} in epoch {epoch})")
    return backbone.cpu().to(memory_format=torch.contiguous_format).eval()
