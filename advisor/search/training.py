"""The shared training engine every strategy (built-in or third-party) trains through.

``train(task, model, config, report)`` fine-tunes ``model`` (a Backbone, usually
``task.backbone.with_new_head(task.num_classes, seed)``) with ``blocks[:config.freeze]``
frozen. It owns everything strategies have in common: seeded shuffling, the optimiser,
mixed precision on CUDA, the per-epoch validation score and ``report`` call, NaN detection,
augmentation of raw images, and keeping the best epoch. A strategy adds only what defines it, through ``TrainConfig``:
labelled source batches (optionally importance-weighted), unlabelled target batches, an
extra loss term (alignment, regularisers), per-block parameter groups and an epoch hook.

Frozen prefix. With ``use_cache`` (the default) the outputs of the frozen ``blocks[:k]``
come from ``task.cache`` (an ``advisor.features.cache.FeatureCache``): the frozen blocks run once
per domain, not once per epoch and trial. The trade-off is that inputs are fixed: no data
augmentation can pass through cached blocks. ``use_cache=False`` runs the frozen blocks on every
batch instead and, without augmentation, gives the same model for the same seed.

Augmentation. Trials that train on raw images (no cached prefix) take the standard fine-tuning
recipe, a random resized crop (area 8-100%, aspect 3/4-4/3, resized back to the input size) and a
horizontal flip, drawn per image on the device (``augment_batch``). ``TrainConfig.augment``:
``None`` (default) turns it on for raw images of at least ``AUGMENT_MIN_SIDE`` px (photos; small
digit-like arrays, where a flip or a crop can change the class, are left alone), ``True`` for raw
images of any size, ``False`` never. ``FitResult.info["augmentation"]`` says what was done.

Device. Inputs are kept as stored (uint8 images stay uint8) and moved to the device once per fit;
each batch is converted to float there. Index permutations are drawn on the device, validation
data lives there, the loss is checked for NaN once per epoch (a running sum on the device, not a
host sync every step), and the model runs channels-last with ``cudnn.benchmark`` on CUDA
(``advisor.device.prepare_model``).

One epoch is one pass over the labelled target train split. Source and unlabelled batches
(same batch size) are drawn alongside from their own seeded permutations, always full (a pass
continues into the next permutation). Epochs are numbered from 1 in ``report`` and ``history``.
The returned model is the one of the best validation epoch (``FitResult.epochs`` is that epoch).

Retrain. Without a validation split (the winner retrained on train+val) the best epoch count of
the search is kept as passes over the data the retrain sees: an epoch is a pass over train+val,
about 4x the optimiser steps of a search epoch on Office 3-label tasks. Keeping the search's
steps instead (each row seen about a quarter as often) cost 7.2 points of test accuracy on
average and was behind in 22 of 24 scenario x strategy pairs (``python -m bench.bench_retrain``;
BENCHMARKS.md, "Retrain schedule"), so more rows get more steps. ``FitResult.info`` reports the steps taken (``steps``).

Source term. With labelled source rows the classification loss is
``target_share * mean CE(target batch) + (1 - target_share) * mean w*CE(source batch)``: the
target's share of the loss, a number that means the same on a split of any size (search, seed
repeats, retrain). Extra terms (alignment, L2-SP) are added with their own strengths.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advisor.data.domain import Domain
from advisor.device import autocast, channels_last, grad_scaler, prepare_model, to_device_batch, to_float
from advisor.errors import InputError, TrainingDiverged
from advisor.features.cache import FeatureCache, stored_tensor
from advisor.models.backbone import Backbone
from advisor.plugin.contracts import FitResult, ReportFn, Strategy, TransferTask, freeze_range
from advisor.search.scoring import score

OPTIMIZERS = ("adam", "adamw", "sgd")
#: Automatic augmentation (``TrainConfig.augment=None``) needs images at least this many px a side.
AUGMENT_MIN_SIDE = 64
#: The random resized crop's range of area fractions and of aspect ratios (torchvision's defaults).
AUGMENT_SCALE = (0.08, 1.0)
AUGMENT_RATIO = (3.0 / 4.0, 4.0 / 3.0)
AUGMENT_RECIPE = "random resized crop (area 8-100%, aspect 3/4-4/3) + horizontal flip"


@dataclass
class StepBatch:
    """What an extra loss sees at one training step (features are penultimate, flattened, before dropout)."""

    model: Backbone
    epoch: int
    target_features: torch.Tensor
    target_logits: torch.Tensor
    target_y: torch.Tensor
    source_features: torch.Tensor | None = None
    source_logits: torch.Tensor | None = None
    source_y: torch.Tensor | None = None
    unlabeled_features: torch.Tensor | None = None
    extra_target_features: torch.Tensor | None = None  # target rows topping up to ``align_rows``


ExtraLoss = Callable[[StepBatch], torch.Tensor]


@dataclass
class TrainConfig:
    """How to train: the generic knobs plus the optional strategy-specific terms.

    - ``source``: labelled source rows whose ``y`` are already *target* class ids (shared
      head), or source class ids when ``source_head_classes > 0`` (a separate source head).
    - ``source_weights``: per-row weights of the source cross-entropy (importance weights).
    - ``target_share``: alpha in [0, 1], the target's share of the classification loss when a
      source term is present (see the module docstring); without a source the loss is CE(target).
    - ``unlabeled``: unlabelled target rows; their features reach ``extra_loss`` only.
    - ``param_groups(model, freeze)``: optimiser groups (for discriminative learning rates);
      default: one group with every trainable parameter of ``blocks[freeze:]`` and the head.
    - ``on_epoch_start(model, epoch)``: e.g. progressive unfreezing (set ``requires_grad``).
    - ``dropout``: a fresh dropout on the penultimate features before the head, during training
      only. It adds no module to the model, so a pretrained backbone's weights keep their meaning
      and the exported model is the same network (dropout is the identity at prediction).
    - ``align_rows``: the least rows per domain ``extra_loss`` sees at every step (0: no floor).
      Source batches hold at least that many rows; the target side (labelled plus unlabelled
      batch) is topped up with target rows drawn from endless seeded passes over the target
      train and unlabelled rows, so a target smaller than ``align_rows`` repeats rows
      (``StepBatch.extra_target_features``; their labels are not used).
    - ``augment``: random resized crop + flip on raw image batches (``None``: automatic, see the
      module docstring); never with a cached prefix.
    """

    epochs: int
    lr: float = 1e-3
    freeze: int = 0
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    batch_size: int = 32
    use_cache: bool = True
    source: Domain | None = None
    source_weights: np.ndarray | None = None
    target_share: float = 0.5
    source_head_classes: int = 0
    unlabeled: Domain | None = None
    extra_loss: ExtraLoss | None = None
    param_groups: Callable[[Backbone, int], list[dict[str, Any]]] | None = None
    on_epoch_start: Callable[[Backbone, int], None] | None = None
    dropout: float = 0.0
    align_rows: int = 0
    augment: bool | None = None
    name: str = "strategy"
    info: dict[str, Any] = field(default_factory=dict)  # copied into FitResult.info


def default_batch_size(task: TransferTask) -> int:
    """``task.batch_size``, but small enough for at least ~4 steps per epoch on a tiny target."""
    return int(max(8, min(task.batch_size, math.ceil(len(task.target_train) / 4))))


def config_from_params(task: TransferTask, params: dict[str, Any], strategy: Strategy | str,
                       **extra: Any) -> TrainConfig:
    """A ``TrainConfig`` from a strategy's params (``epochs``, ``lr``, ``freeze``, ``weight_decay``,
    ``dropout``, ``target_share``, ...); keyword arguments override them. Bookkeeping keys the objective
    stores with a trial (``train_rows``: the rows one search epoch covered) are not training settings.

    Pass the strategy itself: the freeze depth is then clamped into the range it declares
    (``freeze_range(task)``; every depth when it declares none), so no ``fit`` has to clamp it, and
    the config is named after it. A plain name (older plugins) keeps ``params["freeze"]`` as given.
    """
    if isinstance(strategy, str):
        name, freeze = strategy, int(params.get("freeze", 0))
    else:
        low, high = freeze_range(strategy, task)
        name, freeze = strategy.name, min(max(int(params.get("freeze", low)), low), high)
    fields: dict[str, Any] = {
        "epochs": int(params.get("epochs", task.max_epochs)),
        "lr": float(params.get("lr", 1e-3)),
        "freeze": freeze,
        "optimizer": str(params.get("optimizer", "adam")),
        "weight_decay": float(params.get("weight_decay", 0.0)),
        "dropout": float(params.get("dropout", 0.0)),
        "target_share": float(params.get("target_share", 0.5)),
        "batch_size": int(params.get("batch_size", default_batch_size(task))),
        "use_cache": bool(params.get("use_cache", True)),
        "augment": None if params.get("augment") is None else bool(params["augment"]),
        "name": name,
    }
    return TrainConfig(**{**fields, **extra})


class _Stream:
    """Seeded mini-batches of row indices over endless passes (a new permutation per pass).

    ``next()`` walks one pass in batches of ``batch_size`` (the last one may be short), so
    ``ceil(n / batch_size)`` calls are exactly one pass: how target epochs are cut. ``take(m)``
    gives exactly ``m`` indices, continuing into the next pass when this one runs out: batches
    drawn alongside are always full, and rows repeat within one only when ``m > n``.
    """

    def __init__(self, n: int, batch_size: int, seed: int, device: str | torch.device = "cpu") -> None:
        self.n, self.bs = n, batch_size
        self.device = torch.device(device)
        # On CUDA the permutations are drawn by a CUDA generator: indices never cross from the host.
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        self._it: Iterator[torch.Tensor] = iter(())
        self._rest = torch.empty(0, dtype=torch.long, device=self.device)

    def _perm(self) -> torch.Tensor:
        return torch.randperm(self.n, generator=self.gen, device=self.device)

    def next(self) -> torch.Tensor:
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self._perm().split(self.bs))
            return next(self._it)

    def take(self, m: int) -> torch.Tensor:
        parts, have = [], 0
        while have < m:
            if len(self._rest) == 0:
                self._rest = self._perm()
            piece = self._rest[: m - have]
            self._rest = self._rest[len(piece):]
            parts.append(piece)
            have += len(piece)
        return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long, device=self.device)


def augment_batch(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random resized crop and a horizontal flip per image of a float ``N x C x H x W`` batch.

    Each image gets its own crop box (area ``AUGMENT_SCALE``, aspect ``AUGMENT_RATIO``, anywhere
    inside the image) resized back to ``H x W`` with bilinear sampling, and is mirrored with
    probability 1/2; all drawn by ``gen`` on ``x``'s device and applied in one ``grid_sample``.
    """
    n = x.shape[0]
    if n == 0:
        return x
    u = torch.rand(5, n, generator=gen, device=x.device)
    lo, hi = AUGMENT_SCALE
    area = lo + (hi - lo) * u[0]
    log_r = math.log(AUGMENT_RATIO[0]) + (math.log(AUGMENT_RATIO[1]) - math.log(AUGMENT_RATIO[0])) * u[1]
    ratio = torch.exp(log_r)
    w = torch.sqrt(area * ratio).clamp(max=1.0)  # box width and height as fractions of the image
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (2 * u[2] - 1) * (1 - w)  # box centre in [-1, 1] coordinates, box inside the image
    cy = (2 * u[3] - 1) * (1 - h)
    flip = torch.where(u[4] < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = (w * flip).to(x.dtype)
    theta[:, 0, 2] = cx.to(x.dtype)
    theta[:, 1, 1] = h.to(x.dtype)
    theta[:, 1, 2] = cy.to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augmentation_plan(cfg: TrainConfig, x: torch.Tensor, cached: bool) -> tuple[bool, str]:
    """Whether a fit augments its batches, and the sentence ``FitResult.info`` says about it."""
    if x.dim() != 4:
        return False, "off (feature table)"
    if cfg.augment is False:
        return False, "off (turned off)"
    if cached:
        return False, "off (cached frozen prefix: its features were computed once from un-augmented images)"
    if cfg.augment is None and min(x.shape[-2:]) < AUGMENT_MIN_SIDE:
        return False, f"off (images under {AUGMENT_MIN_SIDE} px)"
    return True, AUGMENT_RECIPE


def _inputs(task: TransferTask, model: Backbone, domain: Domain, k: int, use_cache: bool) -> torch.Tensor:
    """The tensor the trainable part starts from: cached ``blocks[:k]`` output, or raw X as stored."""
    if use_cache and k > 0:
        cache = task.cache if task.cache is not None else FeatureCache(device=task.device)
        return cache.prefix(model, domain, k)
    return stored_tensor(domain.X)


def _fused(groups: list[dict[str, Any]]) -> bool:
    """Whether the fused Adam kernel can take these parameters: floating point, all on one CPU or CUDA device.

    One kernel per step instead of a Python loop over the parameter tensors, which dominates the step's
    cost on the small models the advisor trains.
    """
    params = [p for g in groups for p in g["params"]]
    devices = {p.device.type for p in params}
    return bool(params) and len(devices) == 1 and devices <= {"cpu", "cuda"} and all(
        p.is_floating_point() for p in params)


def _make_optimizer(cfg: TrainConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    if cfg.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        return cls(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=_fused(groups) or None)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise InputError(f"unknown optimizer {cfg.optimizer!r}; known: {', '.join(OPTIMIZERS)}")


def trainable_parameters(model: Backbone, freeze: int) -> list[nn.Parameter]:
    """Parameters of ``blocks[freeze:]`` and the head (what a trial with depth ``freeze`` trains)."""
    params = [p for b in model.blocks[freeze:] for p in b.parameters()]
    return params + list(model.head.parameters())


def _forward(model: Backbone, x: torch.Tensor, k: int, cached: bool) -> torch.Tensor:
    """Penultimate features from either the cached prefix or raw inputs (frozen part no-grad)."""
    if not cached and k > 0:
        with torch.no_grad():
            x = model.forward_blocks(x, 0, k)
    return model.forward_blocks(x, k)


#: Rows per evaluation batch for feature vectors (tables, cached prefixes): memory is no concern there,
#: and one forward pass over a small validation split beats several.
FEATURE_EVAL_BATCH = 1024


def eval_batch(x: torch.Tensor, bs: int) -> int:
    """Evaluation batch size: ``FEATURE_EVAL_BATCH`` rows of feature vectors, 4 training batches of images."""
    return max(4 * bs, FEATURE_EVAL_BATCH) if x.dim() <= 2 else 4 * bs


def _predict_from(model: Backbone, x: torch.Tensor, k: int, cached: bool, device: str,
                  batch_size: int) -> np.ndarray:
    """Predicted class ids on ``x`` (already on the device); one copy to the host at the end."""
    was = model.training
    model.eval()
    last = channels_last(model)
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = to_device_batch(x[i : i + batch_size], device, last)
            with autocast(device):
                logits = model.head(_forward(model, xb, k, cached))
            out.append(logits.argmax(1))
    model.train(was)
    return torch.cat(out).cpu().numpy() if out else np.zeros(0, dtype=np.int64)


def train(task: TransferTask, model: Backbone, cfg: TrainConfig, report: ReportFn | None) -> FitResult:
    """Train ``blocks[cfg.freeze:]`` and the head of ``model`` on ``task``; see the module docstring.

    Raises ``TrainingDiverged`` on a NaN or infinite loss; lets ``report``'s exceptions
    (``optuna.TrialPruned``) propagate.
    """
    k = int(cfg.freeze)
    if not 0 <= k <= model.depth:
        raise InputError(f"{cfg.name}: freeze depth {k} outside 0..{model.depth}")
    if cfg.epochs < 1:
        raise InputError(f"{cfg.name}: epochs must be at least 1, got {cfg.epochs}")
    if task.target_train.y is None:
        raise InputError(f"{cfg.name}: the target train split needs labels")
    device, seed = task.device, int(task.seed)
    torch.manual_seed(seed)  # dropout and anything else drawing from the global generator
    cached = cfg.use_cache and k > 0
    model.freeze(k)
    prepare_model(model, device)
    last = channels_last(model)

    x_t = _inputs(task, model, task.target_train, k, cfg.use_cache).to(device)
    y_t = torch.as_tensor(task.target_train.y, dtype=torch.long, device=device)
    x_v = None
    if task.target_val is not None:  # moved to the device once, not every epoch
        x_v = _inputs(task, model, task.target_val, k, cfg.use_cache).to(device)
    x_s = y_s = w_s = None
    if cfg.source is not None:
        if cfg.source.y is None:
            raise InputError(f"{cfg.name}: the source term needs labelled source data")
        x_s = _inputs(task, model, cfg.source, k, cfg.use_cache).to(device)
        y_s = torch.as_tensor(cfg.source.y, dtype=torch.long, device=device)
        w = np.ones(len(cfg.source)) if cfg.source_weights is None else np.asarray(cfg.source_weights)
        if w.shape != (len(cfg.source),):
            raise InputError(f"{cfg.name}: {len(w)} source weights for {len(cfg.source)} source rows")
        w_s = torch.as_tensor(w, dtype=torch.float32, device=device)
    x_u = None
    if cfg.unlabeled is not None and len(cfg.unlabeled) > 1:
        x_u = _inputs(task, model, cfg.unlabeled, k, cfg.use_cache).to(device)

    source_head: nn.Module | None = None
    if x_s is not None and cfg.source_head_classes > 0:
        source_head = nn.Linear(model.feature_dim, cfg.source_head_classes).to(device)

    groups = (cfg.param_groups(model, k) if cfg.param_groups is not None
              else [{"params": trainable_parameters(model, k)}])
    if source_head is not None:
        groups.append({"params": list(source_head.parameters())})
    opt = _make_optimizer(cfg, groups)
    scaler = grad_scaler(device)

    alpha = float(cfg.target_share)
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"{cfg.name}: the target's share of the loss must lie in [0, 1], got {alpha:g}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise InputError(f"{cfg.name}: dropout must lie in [0, 1), got {cfg.dropout:g}")
    bs = max(1, int(cfg.batch_size))
    align = max(0, int(cfg.align_rows)) if cfg.extra_loss is not None else 0
    steps_per_epoch = math.ceil(len(x_t) / bs)
    t_stream = _Stream(len(x_t), bs, seed, device)
    s_stream = _Stream(len(x_s), bs, seed + 1, device) if x_s is not None else None
    u_stream = _Stream(len(x_u), bs, seed + 2, device) if x_u is not None else None
    s_rows = max(bs, align)
    # the rows that top the target side of an alignment step up to ``align`` (train, then unlabelled),
    # gathered from both tensors by index (no joined copy of the inputs)
    n_pool = len(x_t) + (len(x_u) if x_u is not None else 0)
    p_stream = _Stream(n_pool, bs, seed + 3, device) if align else None
    augment, augment_note = augmentation_plan(cfg, x_t, cached)
    aug_gen = torch.Generator(device=torch.device(device)).manual_seed(seed + 4) if augment else None

    history: list[float] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    steps, align_seen = 0, None
    for epoch in range(1, cfg.epochs + 1):
        if cfg.on_epoch_start is not None:
            cfg.on_epoch_start(model, epoch)
        model.train()
        loss_sum = torch.zeros((), device=device)  # checked once per epoch: no host sync per step
        for _ in range(steps_per_epoch):
            idx_t = t_stream.next()
            parts = [to_float(x_t[idx_t])]
            idx_s = s_stream.take(s_rows) if s_stream is not None else None
            idx_u = u_stream.take(bs) if u_stream is not None else None
            if idx_s is not None:
                parts.append(to_float(x_s[idx_s]))
            if idx_u is not None:
                parts.append(to_float(x_u[idx_u]))
            top_up = align - len(idx_t) - (len(idx_u) if idx_u is not None else 0)
            if p_stream is not None and top_up > 0:
                parts.append(_gather(x_t, x_u, p_stream.take(top_up)))
            sizes = [len(p) for p in parts]
            xb = torch.cat(parts)
            if aug_gen is not None:
                xb = augment_batch(xb, aug_gen)
            if last and xb.dim() == 4:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with autocast(device):
                f_split = list(_forward(model, xb, k, cached).split(sizes))
                f_t = f_split[0]
                logits_t = model.head(F.dropout(f_t, cfg.dropout) if cfg.dropout > 0 else f_t)
                yb = y_t[idx_t]
                loss = F.cross_entropy(logits_t.float(), yb)
                batch = StepBatch(model, epoch, f_t, logits_t, yb)
                at = 1
                if idx_s is not None:
                    f_s = f_split[at]
                    at += 1
                    head = source_head if source_head is not None else model.head
                    logits_s = head(F.dropout(f_s, cfg.dropout) if cfg.dropout > 0 else f_s)
                    ce = F.cross_entropy(logits_s.float(), y_s[idx_s], reduction="none")
                    loss = alpha * loss + (1.0 - alpha) * (ce * w_s[idx_s]).mean()
                    batch.source_features, batch.source_logits, batch.source_y = f_s, logits_s, y_s[idx_s]
                if idx_u is not None:
                    batch.unlabeled_features = f_split[at]
                    at += 1
                if at < len(f_split):
                    batch.extra_target_features = f_split[at]
                if cfg.extra_loss is not None:
                    loss = loss + cfg.extra_loss(batch)
            if align:
                seen = min(sum(sizes[1:2]) if idx_s is not None else 0, sizes[0] + sum(sizes[2:]))
                align_seen = seen if align_seen is None else min(align_seen, seen)
            loss_sum = loss_sum + loss.detach().float()
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            steps += 1
        if not torch.isfinite(loss_sum):  # the one host sync of the epoch's training steps
            raise TrainingDiverged(
                f"{cfg.name}: the training loss became {float(loss_sum)} in epoch {epoch} "
                f"(learning rate {cfg.lr:g}); try a smaller learning rate or transfer strength"
            )
        if x_v is None:
            continue
        pred = _predict_from(model, x_v, k, cached, device, eval_batch(x_v, bs))
        val = score(task.score, task.target_val.y, pred, task.num_classes)
        history.append(val)
        if best is None or val > best[0]:
            best = (val, epoch, {n: t.detach().clone() for n, t in model.state_dict().items()})
        if report is not None:
            report(epoch, val)

    info = dict(cfg.info)
    info.update({"freeze": k, "cached_prefix": cached, "steps": steps, "augmentation": augment_note})
    if x_s is not None:
        info["target_share"] = alpha
    if align_seen is not None:
        info["alignment_rows"] = align_seen  # the fewest rows per domain one alignment step saw
    if best is None:
        model.eval()
        return FitResult(model=model, val_score=None, val_pred=None, epochs=cfg.epochs,
                         history=history, info=info)
    model.load_state_dict(best[2])
    model.eval()
    pred = _predict_from(model, x_v, k, cached, device, eval_batch(x_v, bs))
    info["last_val_score"] = history[-1]
    return FitResult(model=model, val_score=best[0], val_pred=pred, epochs=best[1], history=history,
                     info=info)


def predict_proba(model: nn.Module, X: np.ndarray, device: str = "cpu", batch_size: int = 256) -> np.ndarray:
    """Class probabilities (``N x C``) of ``model`` on Domain-convention inputs ``X``."""
    was = model.training
    model.eval()
    prepare_model(model, device)
    last = channels_last(model)
    x = stored_tensor(X)  # uint8 images are converted per batch
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            with autocast(device):
                logits = model(to_device_batch(x[i : i + batch_size], device, last))
            out.append(torch.softmax(logits.float(), 1))
    out = [torch.cat(out).cpu()] if out else []
    model.train(was)
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(out).numpy()


def predict(model: nn.Module, X: np.ndarray, device: str = "cpu", batch_size: int = 256) -> np.ndarray:
    """Predicted class ids of ``model`` on Domain-convention inputs ``X``."""
    proba = predict_proba(model, X, device, batch_size)
    return proba.argmax(1) if len(proba) else np.zeros(0, dtype=np.int64)


def _gather(x_t: torch.Tensor, x_u: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor:
    """Rows ``idx`` of train-then-unlabelled as floats, without joining the two tensors."""
    if x_u is None:
        return to_float(x_t[idx])
    n_t = len(x_t)
    in_t = idx < n_t
    out = torch.empty((len(idx), *x_t.shape[1:]), dtype=torch.float32, device=x_t.device)
    out[in_t] = to_float(x_t[idx[in_t]])
    out[~in_t] = to_float(x_u[idx[~in_t] - n_t])
    return out
