"""One entry point from what a user typed to validated data and a source model.

The CLI (``recommend``, ``similarity``), the API and the UI all call ``resolve_inputs``. It
works in a fixed order so bad input fails fast and before any training:

1. the request itself (``--demo`` xor ``--target``; a source or a model) and the model
   argument (architecture name, weights file on disk, checkpoint readable);
2. every data set, loaded and validated in full (``load_data``), then split;
3. only then the model is built, loaded or pretrained on the source data (cached).

Model rules (``--model``):

- a torchvision name (``resnet18``, ...): pretrained weights from ``--weights FILE``, a
  torchvision weights name (``--weights DEFAULT``, ``IMAGENET1K_V1``: the hub cache, downloaded
  when missing and the network allows) or, without ``--weights``, the torch hub cache; missing
  weights are an error saying which file to put where;
- a checkpoint path: this project's checkpoint file;
- ``cnn`` / ``mlp``: pretrained here on the source data, or random when there is none;
- ``none``: no model (metrics on raw inputs);
- not given: pretrained here on the source data with the default architecture (``mlp`` for
  tables; ``resnet18`` adapted to small inputs for images; a scenario names its own).

Input size and normalisation follow the model: a torchvision architecture takes its weights'
preprocessing (``advisor.models.sources.weights_preprocess``: resize the shorter side, centre-crop,
mean and std; e.g. 256 -> 224 px with ImageNet statistics), a checkpoint its stored size and
preprocessing, anything else ``DEFAULT_IMAGE_SIZE`` (32 px); ``--image-size`` overrides the size
(a plain square resize). ``input_description`` states what was used (reports, exports).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.data.domain import (
    DEFAULT_TEST_FRACTION,
    DEFAULT_VAL_FRACTION,
    Domain,
    TargetSplits,
    check_classes,
    split_target,
)
from advisor.data.loaders import DEFAULT_IMAGE_SIZE, check_compatible, load_domain, match_channels
from advisor.errors import InputError

if TYPE_CHECKING:
    from advisor.models.backbone import Backbone, ModelSpec
    from advisor.models.sources import Checkpoint

ARCH_NAMES = ("cnn", "mlp", "resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0")
TORCHVISION_NAMES = ("resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0")
NO_MODEL = "none"
DEFAULT_IMAGE_ARCH = "resnet18"
DEFAULT_TABLE_ARCH = "mlp"
SMALL_INPUT_BELOW = 64  # px: resnets pretrained here use a 3x3 stride-1 stem under this size
#: Bounds of ``--image-size`` (px): below 8 the architectures' strides leave nothing; above 1024 a
#: few hundred images would already take gigabytes.
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024


@dataclass
class InputRequest:
    """What the user asked for, as typed (paths and names), before anything is loaded."""

    source: str | None = None
    target: str | None = None
    target_unlabeled: str | None = None
    demo: str | None = None  # built-in scenario name (from the registry); "": the registry's default
    label_column: str = "label"
    model: str | None = None  # arch name | checkpoint path | "mlp" | "cnn" | "none"
    weights: str | None = None
    image_size: int | None = None
    val_fraction: float = DEFAULT_VAL_FRACTION
    test_fraction: float = DEFAULT_TEST_FRACTION
    seed: int = 0
    device: str = "cpu"


@dataclass
class LoadedData:
    """Validated data, split, plus the model argument resolved (nothing built yet)."""

    source: Domain | None
    splits: TargetSplits
    target_unlabeled: Domain | None
    model: ModelChoice
    scenario: str | None = None
    expected: str = ""


@dataclass
class ModelChoice:
    """How the model will be obtained: ``kind`` is torchvision, checkpoint, arch or none."""

    kind: str
    arch: str
    weights_path: Path | None = None
    checkpoint: Checkpoint | None = None
    explicit: bool = False  # the user (or the scenario) named it
    preprocess: dict[str, Any] | None = None  # torchvision: the weights' size and normalisation
    preprocess_note: str = ""


@dataclass
class ResolvedInputs:
    """Everything downstream needs: the domains, the target splits and the source model."""

    source: Domain | None
    splits: TargetSplits
    target_unlabeled: Domain | None
    backbone: Backbone | None  # None only when model == "none"
    pretrained: bool  # False when the backbone is random (no source model and no source data)
    model_note: str  # one line for the user about where the model came from
    scenario: str | None = None
    expected: str = ""
    _model_fp: list[str] = field(default_factory=list, repr=False)

    def model_fingerprint(self) -> str:
        """A content hash of the model's spec and weights ("none" without a model)."""
        if self.backbone is None:
            return NO_MODEL
        if not self._model_fp:
            import json

            h = hashlib.sha256(json.dumps(self.backbone.spec.to_json(), sort_keys=True).encode())
            for k, v in self.backbone.state_dict().items():
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
            self._model_fp.append(h.hexdigest()[:16])
        return self._model_fp[0]

    def fingerprints(self) -> dict[str, str]:
        """Content hashes of each domain and split and of the model (for caches and run configs)."""
        fps = {
            "target_train": self.splits.train.fingerprint,
            "target_val": self.splits.val.fingerprint,
            "target_test": self.splits.test.fingerprint,
            "model": self.model_fingerprint(),
        }
        if self.source is not None:
            fps["source"] = self.source.fingerprint
        if self.target_unlabeled is not None:
            fps["target_unlabeled"] = self.target_unlabeled.fingerprint
        return fps

    def describe(self) -> list[str]:
        """Human lines: each domain's size, classes and input shape, the splits and the model."""
        lines = []
        if self.scenario:
            lines.append(f"scenario: {self.scenario}" + (f" (expected: {self.expected})" if self.expected else ""))
        if self.source is not None:
            lines.append(_domain_line("source", self.source))
        t = self.splits
        lines.append(
            f"target: {len(t.train) + len(t.val) + len(t.test)} {_unit(t.train)}, "
            f"{t.train.num_classes} classes, input {_shape(t.train)}; split train {len(t.train)} / "
            f"val {len(t.val)} / test {len(t.test)}"
        )
        if self.target_unlabeled is not None:
            lines.append(_domain_line("unlabelled target", self.target_unlabeled))
        if self.backbone is not None:
            b = self.backbone
            lines.append(f"model: {b.spec.arch}, {b.depth} blocks, {b.feature_dim} features; {self.model_note}")
            if t.train.kind == "images":
                lines.append("input: " + input_summary(input_description(b, t.train)))
        else:
            lines.append(f"model: {self.model_note}")
        return lines


def _unit(d: Domain) -> str:
    return "images" if d.kind == "images" else "rows"


def _shape(d: Domain) -> str:
    return "x".join(str(s) for s in d.input_shape)


def _domain_line(label: str, d: Domain) -> str:
    classes = f", {d.num_classes} classes" if d.labelled else ""
    origin = f" from {d.origin}" if d.origin else ""
    return f"{label}: {len(d)} {_unit(d)}{classes}, input {_shape(d)}{origin}"


# --------------------------------------------------------------------------- stage 1: the request


def _check_request(req: InputRequest) -> None:
    if req.demo is not None and req.target is not None:
        raise InputError("give either --demo or --target, not both")
    if req.demo is not None:
        for flag, value in (("--source", req.source), ("--target-unlabeled", req.target_unlabeled)):
            if value is not None:
                raise InputError(f"{flag} cannot be combined with --demo (a scenario brings its own data)")
        # A scenario has fixed images and splits: options it would ignore are refused, not dropped.
        ignored = (("--image-size", req.image_size is not None),
                   ("--val-fraction", req.val_fraction != DEFAULT_VAL_FRACTION),
                   ("--test-fraction", req.test_fraction != DEFAULT_TEST_FRACTION),
                   ("--label-column", req.label_column != "label"))
        for flag, given in ignored:
            if given:
                raise InputError(f"{flag} cannot be combined with --demo (a scenario has fixed data and splits)")
        return
    if req.target is None:
        raise InputError("give --target PATH (with --source PATH and/or --model) or --demo")
    if req.source is None and req.model is None:
        raise InputError("give --source PATH (source data) and/or --model (a source model) with --target")
    if req.image_size is not None and not MIN_IMAGE_SIZE <= req.image_size <= MAX_IMAGE_SIZE:
        raise InputError(f"--image-size must be between {MIN_IMAGE_SIZE} and {MAX_IMAGE_SIZE} pixels, "
                         f"got {req.image_size}")


def choose_model(name: str | None, weights: str | None) -> ModelChoice | None:
    """Check the model argument without building anything; ``None`` means the default."""
    if name is None:
        if weights is not None:
            raise InputError("--weights needs --model ARCH (one of " + ", ".join(TORCHVISION_NAMES) + ")")
        return None
    if name == NO_MODEL:
        return ModelChoice("none", NO_MODEL, explicit=True)
    if name in TORCHVISION_NAMES:
        from advisor.models.sources import weights_file

        return ModelChoice("torchvision", name, weights_path=weights_file(name, weights), explicit=True)
    if name in ARCH_NAMES:
        if weights is not None:
            raise InputError(f"--weights is for torchvision architectures, not {name!r}")
        return ModelChoice("arch", name, explicit=True)
    path = Path(name).expanduser()
    if path.exists() or path.suffix.lower() in (".pt", ".pth", ".ckpt") or "/" in name or "\\" in name:
        from advisor.models.sources import read_checkpoint

        ckpt = read_checkpoint(path)
        return ModelChoice("checkpoint", ckpt.spec.arch, checkpoint=ckpt, explicit=True)
    raise InputError(
        f"unknown architecture {name!r}; known: {', '.join(ARCH_NAMES)}, {NO_MODEL}, or a checkpoint file"
    )


# --------------------------------------------------------------------------- stage 2: the data


def load_data(req: InputRequest, registry: Any = None) -> LoadedData:
    """Validate the request and load every data set in full, before any model is built."""
    _check_request(req)
    choice = choose_model(req.model, req.weights)
    if req.demo is not None:
        if registry is None:
            raise InputError("built-in scenarios need the plugin registry")
        name = req.demo or registry.default_scenario()
        scenario = registry.scenario(name)
        data = scenario.build(req.seed)
        if choice is None:
            choice = choose_model(data.model, None)
        check_classes(data.target.train)
        _check_model_data(choice, data.target.train)
        return LoadedData(data.source, data.target, data.target_unlabeled, choice, name,
                          data.expected or getattr(scenario, "expected", ""))

    size, resize, interp = _image_geometry(choice, req.image_size)
    geometry = {"image_size": size, "resize": resize, "interpolation": interp}
    source = None
    if req.source is not None:
        source = load_domain(req.source, name="source", label_column=req.label_column, **geometry)
    target = load_domain(req.target, name="target", label_column=req.label_column, **geometry)
    unlabeled = None
    if req.target_unlabeled is not None:
        unlabeled = load_domain(req.target_unlabeled, name="unlabelled target",
                                label_column=req.label_column, labelled=False, **geometry)
    for other in (source, unlabeled):
        if other is not None:
            check_compatible(other, target)
    channels = None
    if choice is not None and choice.checkpoint is not None and choice.checkpoint.spec.input_kind == "images":
        channels = int(choice.checkpoint.spec.input_shape[0])
    source, target, unlabeled = match_channels([source, target, unlabeled], channels)
    assert target is not None
    if unlabeled is not None:
        unlabeled = Domain(unlabeled.name, unlabeled.X, None, target.classes, unlabeled.kind, unlabeled.origin)
    if source is not None:
        check_classes(source)
    splits = split_target(target, req.val_fraction, req.test_fraction, req.seed)
    if choice is None:
        choice = ModelChoice("arch", DEFAULT_TABLE_ARCH if target.kind == "features" else DEFAULT_IMAGE_ARCH)
    _check_model_data(choice, target)
    return LoadedData(source, splits, unlabeled, choice)


def _image_geometry(choice: ModelChoice | None, image_size: int | None) -> tuple[int, int | None, str]:
    """(side, shorter-side resize or None, interpolation) to load images at, from the model (module docstring)."""
    if choice is not None and choice.kind == "torchvision":
        from advisor.models.sources import weights_preprocess

        prep, note = weights_preprocess(choice.arch, choice.weights_path)
        if image_size is not None:
            note += f"; --image-size {image_size} overrides the size (images resized to {image_size} px square)"
            prep = {**prep, "crop": int(image_size), "resize": None}
        choice.preprocess, choice.preprocess_note = prep, note
        return int(prep["crop"]), prep["resize"], str(prep["interpolation"])
    if image_size is not None:
        return int(image_size), None, "bilinear"
    if choice is not None and choice.checkpoint is not None and choice.checkpoint.spec.input_kind == "images":
        spec = choice.checkpoint.spec
        prep = spec.options.get("preprocess") or {}
        return int(spec.input_shape[-1]), prep.get("resize"), str(prep.get("interpolation", "bilinear"))
    return DEFAULT_IMAGE_SIZE, None, "bilinear"


def input_description(backbone: Backbone | None, domain: Domain) -> dict[str, Any]:
    """What the model's inputs are: kind and shape, and for images the resize, crop and normalisation.

    For the JSON report, the export metadata and the model card: ``size`` (H, W), ``resize`` (the
    shorter side before the centre crop, None for a square resize), ``interpolation`` and the
    ``mean`` / ``std`` the model's first block normalises [0, 1] pixels with.
    """
    out: dict[str, Any] = {"kind": domain.kind, "shape": list(domain.input_shape)}
    if domain.kind != "images":
        return out
    out["size"] = list(domain.input_shape[-2:])
    prep = (backbone.spec.options.get("preprocess") or {}) if backbone is not None else {}
    out["resize"] = prep.get("resize")
    out["interpolation"] = prep.get("interpolation", "bilinear")
    out["mean"] = out["std"] = None
    if backbone is not None:
        from advisor.models.architectures import ImageInput

        first = next((m for m in backbone.modules() if isinstance(m, ImageInput)), None)
        if first is not None:
            out["mean"] = [round(float(v), 4) for v in first.mean.flatten()]
            out["std"] = [round(float(v), 4) for v in first.std.flatten()]
    return out


def input_summary(desc: dict[str, Any]) -> str:
    """One human line of ``input_description``."""
    if desc.get("kind") != "images":
        return f"{desc.get('kind')} of shape {desc.get('shape')}"
    h, w = desc["size"]
    how = (f"shorter side resized to {desc['resize']}, centre crop" if desc.get("resize")
           else "resized")
    text = f"{h}x{w} px ({how}, {desc.get('interpolation', 'bilinear')})"
    if desc.get("mean") is not None:
        text += f", normalised with mean {tuple(desc['mean'])} and std {tuple(desc['std'])}"
    return text


def _check_model_data(choice: ModelChoice, target: Domain) -> None:
    """Refuse a model that cannot take the target's inputs (kind, feature dimension)."""
    if choice.kind == "none":
        return
    takes = "features" if choice.arch == "mlp" else "images"
    if takes != target.kind:
        hint = "--model mlp" if target.kind == "features" else "--model cnn or a torchvision architecture"
        raise InputError(f"model {choice.arch} takes {takes} but the target holds {target.kind}; use {hint}")
    if choice.checkpoint is not None and takes == "features":
        dim = int(choice.checkpoint.spec.input_shape[0])
        if dim != target.X.shape[1]:
            raise InputError(
                f"feature dimensions differ: the model {choice.checkpoint.path} takes {dim} features, "
                f"the target has {target.X.shape[1]}"
            )


# --------------------------------------------------------------------------- stage 3: the model


def resolve_inputs(req: InputRequest, registry: Any = None) -> ResolvedInputs:
    """Load and validate everything (``load_data``), then obtain the model (pretraining last)."""
    data = load_data(req, registry)
    backbone, pretrained, note = _build_model(data, req)
    return ResolvedInputs(data.source, data.splits, data.target_unlabeled, backbone, pretrained, note,
                          data.scenario, data.expected)


def default_spec(arch: str, domain: Domain) -> ModelSpec:
    """The spec of ``arch`` for ``domain``'s inputs (resnets get a small-input stem under 64 px)."""
    from advisor.models.backbone import ModelSpec

    options: dict[str, Any] = {}
    shape = domain.input_shape
    if arch in TORCHVISION_NAMES:
        shape = (3, *shape[1:])
        if arch.startswith("resnet") and shape[-1] < SMALL_INPUT_BELOW:
            options["small_input"] = True
    return ModelSpec(arch, domain.kind, tuple(shape), options)


def _build_model(data: LoadedData, req: InputRequest) -> tuple[Backbone | None, bool, str]:
    choice = data.model
    target = data.splits.train
    if choice.kind == "none":
        return None, False, "none (--model none): metrics read the raw inputs"
    if choice.kind == "torchvision":
        from advisor.models.sources import torchvision_backbone

        backbone = torchvision_backbone(choice.arch, target.input_shape, choice.weights_path,
                                        preprocess=choice.preprocess)
        note = f"{choice.arch} with weights from {choice.weights_path}"
        return backbone, True, note + (f"; {choice.preprocess_note}" if choice.preprocess_note else "")
    if choice.kind == "checkpoint":
        from advisor.models.sources import backbone_from_checkpoint

        assert choice.checkpoint is not None
        return backbone_from_checkpoint(choice.checkpoint), True, f"checkpoint {choice.checkpoint.path}"
    spec = default_spec(choice.arch, target)
    if data.source is not None and data.source.labelled:
        from advisor.device import resolve_device
        from advisor.models.sources import pretrain_source

        backbone, note = pretrain_source(data.source, spec, seed=req.seed, device=resolve_device(req.device))
        return backbone, True, f"{choice.arch} {note}"
    from advisor.models.architectures import build

    backbone = build(spec, target.num_classes, seed=req.seed)
    backbone.source_classes = ()
    return backbone, False, (f"random {choice.arch} (no source model or source data): strategies that "
                             "need a pretrained model are not applicable")
