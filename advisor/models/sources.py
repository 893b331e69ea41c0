"""The source model as a ``Backbone``: torchvision weights, a checkpoint, or pretrained here.

- ``torchvision_backbone``: a torchvision architecture with weights from a state-dict file
  (``--weights FILE``), from the local torch hub cache (``--model ARCH`` alone: never
  downloaded), or named as torchvision names them (``--weights DEFAULT``, ``IMAGENET1K_V1``):
  found in the hub cache (``$TORCH_HOME/hub/checkpoints``) or downloaded there when the network
  allows. The state dict is mapped onto the block-cut model in parameter order
  (``advisor.models.architectures`` reuses the torchvision submodules in their original order),
  checking every shape.
- ``weights_preprocess``: the input size and normalisation that go with the weights, from
  torchvision's weights enum (resize, centre crop, mean, std, interpolation) of the entry whose
  file name matches (``resnet18-f37072fd.pth``), else the architecture's DEFAULT entry, with a note.
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
from advisor.errors import AdvisorFailure, InputError, TrainingDiverged
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


#: Set to 1 to never download weights (a torchvision weights name must then be in the hub cache).
OFFLINE_ENV = "TRANSFER_ADVISOR_OFFLINE"
#: Seconds a download may wait on the network before it is given up.
DOWNLOAD_TIMEOUT_S = 30


def weights_entry(arch: str, name: str) -> Any | None:
    """torchvision's weights enum entry of ``arch`` called ``name`` (``DEFAULT`` included), else None."""
    from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    if name == "DEFAULT":
        return enum.DEFAULT
    return enum.__members__.get(name)


def weights_names(arch: str) -> list[str]:
    """The torchvision weights names ``--weights`` accepts for ``arch``."""
    from torchvision.models import get_model_weights

    return ["DEFAULT", *(name for name in get_model_weights(arch).__members__ if name != "DEFAULT")]


def download_weights(url: str, path: Path) -> Path:
    """Download ``url`` to ``path`` (hash prefix in the file name checked, as torch.hub does).

    Any network or hash failure is one ``AdvisorFailure`` line (exit 1) saying where to put the
    file by hand; ``TRANSFER_ADVISOR_OFFLINE=1`` refuses before any network access.
    """
    import socket

    where = (f"put {path.name} in {path.parent} (download it from {url} on a machine with a network) "
             "or pass --weights FILE")
    if os.environ.get(OFFLINE_ENV, "").strip() not in ("", "0"):
        raise AdvisorFailure(f"{path.name} is not in the torch hub cache and {OFFLINE_ENV} forbids downloads: {where}")
    found = re.search(r"-([a-f0-9]+)\.", path.name)
    saved = socket.getdefaulttimeout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
        torch.hub.download_url_to_file(url, str(path), hash_prefix=found.group(1) if found else None,
                                       progress=False)
    except Exception as exc:  # URLError, timeouts, HTTP errors, a hash mismatch: all mean "no file"
        reason = str(getattr(exc, "reason", "") or exc).strip().splitlines()
        raise AdvisorFailure(f"cannot download {url} ({reason[0][:160] if reason else type(exc).__name__}; "
                             f"no network?): {where}") from exc
    finally:
        socket.setdefaulttimeout(saved)
    return path


def weights_file(arch: str, weights: str | Path | None) -> Path:
    """The weights file to use; it must exist (or be downloadable, for a torchvision weights name).

    ``weights`` is a file path, a torchvision weights name (``DEFAULT``, ``IMAGENET1K_V1``: the hub
    cache, downloaded when missing and the network allows), or None (the DEFAULT file in the hub
    cache; never downloaded: the message says to pass ``--weights DEFAULT`` for that).
    """
    if arch not in TORCHVISION_ARCHS:
        raise InputError(
            f"--weights is for torchvision architectures ({', '.join(TORCHVISION_ARCHS)}), not {arch!r}"
        )
    if weights is not None:
        path = Path(weights).expanduser()
        if path.is_file():
            return path
        entry = weights_entry(arch, str(weights)) if "/" not in str(weights) else None
        if entry is None:
            if re.fullmatch(r"[A-Z0-9_]+", str(weights)):
                raise InputError(f"{weights} is not a torchvision weights name of {arch} "
                                 f"({', '.join(weights_names(arch))}) nor a file")
            raise InputError(f"weights file not found: {path}")
        path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(entry.url)
        return path if path.is_file() else download_weights(entry.url, path)
    path = hub_weights_path(arch)
    if not path.is_file():
        raise InputError(
            f"no pretrained weights for {arch} on disk: put {path.name} in {path.parent} "
            f"(torchvision's {arch} ImageNet file), pass --weights FILE, or --weights DEFAULT to download it"
        )
    return path


def weights_preprocess(arch: str, path: Path | None) -> tuple[dict[str, Any], str]:
    """Input size and normalisation of ``arch``'s weights file, and a note saying where they come from.

    The torchvision weights entry whose URL ends in the file's name gives them; any other file
    takes the architecture's DEFAULT entry's (the note says so). Keys: ``crop`` (the input side),
    ``resize`` (the shorter side before the centre crop), ``mean``, ``std``, ``interpolation``.
    """
    import inspect

    from torchvision.models import get_model_weights
    from torchvision.transforms._presets import ImageClassification

    enum = get_model_weights(arch)
    entry = next((w for w in enum if path is not None and os.path.basename(w.url) == path.name), None)
    matched = entry is not None
    entry = entry or enum.DEFAULT
    defaults = {k: v.default for k, v in inspect.signature(ImageClassification.__init__).parameters.items()
                if v.default is not inspect.Parameter.empty}
    kw = {**defaults, **getattr(entry.transforms, "keywords", {})}
    interp = kw["interpolation"]
    prep = {"crop": int(kw["crop_size"]), "resize": int(kw["resize_size"]),
            "mean": [float(v) for v in kw["mean"]], "std": [float(v) for v in kw["std"]],
            "interpolation": str(getattr(interp, "value", interp))}
    label = f"{enum.__name__}.{entry.name}"
    if matched:
        note = f"input as torchvision's {label}"
    else:
        name = path.name if path is not None else "the weights"
        note = (f"{name} is not named like a torchvision weights file: input size and normalisation "
                f"of {arch}'s DEFAULT entry ({label})")
    note += (f": resize {prep['resize']}, centre crop {prep['crop']} px, {prep['interpolation']}, "
             f"mean {tuple(round(v, 3) for v in prep['mean'])}, std {tuple(round(v, 3) for v in prep['std'])}")
    return prep, note


def torchvision_backbone(
    arch: str,
    input_shape: tuple[int, ...],
    weights: str | Path | None,
    num_classes: int | None = None,
    preprocess: dict[str, Any] | None = None,
) -> Backbone:
    """A pretrained torchvision ``arch`` as a Backbone; the head size comes from the weights.

    ``num_classes``, when given, must match the weights' head. Source classes are the ImageNet
    categories for a 1000-class head, else ``"0"``, ``"1"``, ... ``preprocess`` (from
    ``weights_preprocess``) is kept in the spec's options: its mean and std are the model's input
    normalisation, and its resize and crop travel with checkpoints and exports.
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
    spec = ModelSpec(arch, "images", (3, *input_shape[-2:]), {"preprocess": dict(preprocess)} if preprocess else {})
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
