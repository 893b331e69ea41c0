"""The frozen-prefix cache: run frozen blocks once per domain, reuse their outputs everywhere.

A trial with freeze depth ``k`` trains only ``blocks[k:]`` and the head, so the output of
``blocks[:k]`` on a domain never changes during a search: it is computed once (eval mode, no
gradients) and memoised, keyed by ``(hash of the spec and blocks[:k], domain fingerprint, k)``.
Metrics read the penultimate features (``k = depth``) and the source head's logits from the same cache.

Deeper prefixes are built from the deepest shallower prefix already cached, so asking for
every depth costs one forward pass in total. With a ``root`` directory the tensors are also
stored on disk (``.pt``, loaded with ``weights_only=True``) and survive the process.
Trade-off: cached activations are fixed, so no data augmentation can pass through frozen blocks.

Inputs may be uint8 images (the loaders keep decoded files that way): they are converted to float
per batch, never as a whole. The prefix runs under the same mixed precision as training
(``advisor.device.autocast``: bf16 on CUDA), so a cached and an uncached trial see the same
activations on the GPU too; the stored tensors are float32.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import torch

from advisor.data.domain import Domain
from advisor.models.backbone import Backbone

_FINGERPRINTS: weakref.WeakKeyDictionary[Backbone, tuple[tuple[int, ...], list[str]]] = (
    weakref.WeakKeyDictionary()
)


def _versions(module: torch.nn.Module) -> tuple[int, ...]:
    """In-place version counters of every tensor: they change whenever the weights do."""
    return tuple(t._version for t in module.state_dict(keep_vars=True).values())


def _hash_state(h: Any, module: torch.nn.Module) -> None:
    for name, tensor in module.state_dict().items():
        t = tensor.detach().cpu().contiguous()  # bytes of every dtype, bf16 included
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def fingerprints(backbone: Backbone) -> list[str]:
    """Content hashes ``[prefix_0, ..., prefix_depth, whole]``.

    ``prefix_k`` covers the spec and ``blocks[:k]`` only, so a copy with a new head (every
    trial) shares the source's cached prefixes; ``whole`` adds the head and source classes.
    Memoised per object and recomputed when any weight changed in place (version counters).
    """
    versions = _versions(backbone)
    hit = _FINGERPRINTS.get(backbone)
    if hit is not None and hit[0] == versions:
        return hit[1]
    h = hashlib.sha256()
    h.update(json.dumps(backbone.spec.to_json(), sort_keys=True, default=str).encode())
    out = [h.hexdigest()[:16]]
    for block in backbone.blocks:
        _hash_state(h, block)
        out.append(h.hexdigest()[:16])
    h.update("\x1f".join(backbone.source_classes).encode())
    _hash_state(h, backbone.head)
    out.append(h.hexdigest()[:16])
    _FINGERPRINTS[backbone] = (versions, out)
    return out


def backbone_fingerprint(backbone: Backbone) -> str:
    """A content hash of the backbone's spec, blocks, head and source classes."""
    return fingerprints(backbone)[-1]


def as_tensor(X: np.ndarray) -> torch.Tensor:
    """Domain-convention inputs as a float32 CPU tensor (no copy when already float32).

    uint8 images are divided by 255 (a float32 copy of the whole array: for batches, prefer
    ``stored_tensor`` and ``advisor.device.to_float`` per batch).
    """
    if X.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(X)).float().div_(255.0)
    return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))


def stored_tensor(X: np.ndarray) -> torch.Tensor:
    """Domain-convention inputs as a CPU tensor without conversion: uint8 stays uint8 (no copy)."""
    if X.dtype == np.uint8:
        return torch.from_numpy(np.ascontiguousarray(X))
    return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))


class FeatureCache:
    """Memoised outputs of ``blocks[:k]`` per (backbone, domain, k), in memory and optionally on disk."""

    def __init__(self, root: Path | None = None, device: str = "cpu", batch_size: int = 256) -> None:
        self.root = Path(root) if root is not None else None
        self.device = device
        self.batch_size = int(batch_size)
        self._mem: dict[tuple[str, str, int], torch.Tensor] = {}
        self.hits = 0
        self.misses = 0

    def _path(self, key: tuple[str, str, int]) -> Path | None:
        if self.root is None:
            return None
        return self.root / f"prefix-{key[0]}-{key[1]}-k{key[2]}.pt"

    def _lookup(self, key: tuple[str, str, int]) -> torch.Tensor | None:
        if key in self._mem:
            return self._mem[key]
        path = self._path(key)
        if path is not None and path.exists():
            try:
                t = torch.load(path, map_location="cpu", weights_only=True)
            except Exception:  # a damaged file (written before writes were atomic): recompute it
                path.unlink(missing_ok=True)
                return None
            self._mem[key] = t
            return t
        return None

    def _store(self, key: tuple[str, str, int], t: torch.Tensor) -> None:
        self._mem[key] = t
        path = self._path(key)
        if path is not None:
            from advisor.runs.files import atomic_write_bytes

            # Serialised in memory, then a per-process temporary file renamed into place: a concurrent
            # worker never reads half a file, and a full disk is a plain OSError (one line), not torch's.
            buf = io.BytesIO()
            torch.save(t, buf)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, buf.getvalue())

    def prefix(self, backbone: Backbone, domain: Domain, k: int) -> torch.Tensor:
        """Output of ``blocks[:k]`` on ``domain.X`` (CPU float32; ``k = 0`` is X itself)."""
        if not 0 <= k <= backbone.depth:
            raise ValueError(f"prefix depth {k} outside 0..{backbone.depth}")
        if k == 0:
            return as_tensor(domain.X)
        key = (fingerprints(backbone)[k], domain.fingerprint, k)
        hit = self._lookup(key)
        if hit is not None:
            self.hits += 1
            return hit
        self.misses += 1
        start = 0
        x = stored_tensor(domain.X)
        for j in range(k - 1, 0, -1):  # resume from the deepest cached shallower prefix
            t = self._lookup((fingerprints(backbone)[j], key[1], j))
            if t is not None:
                start, x = j, t
                break
        out = self._run(backbone, x, start, k)
        self._store(key, out)
        return out

    def _run(self, backbone: Backbone, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """``blocks[start:stop]`` in eval mode without gradients, batched, on ``self.device``.

        Batches are converted to float on the device (uint8 travels as uint8) and run under the
        training's mixed precision (``autocast``) with its memory layout (``prepare_model``).
        """
        from advisor.device import autocast, channels_last, prepare_model, to_device_batch

        model = backbone
        on = next(backbone.parameters()).device
        if torch.device(self.device) != on:
            model = copy.deepcopy(backbone)  # never move the caller's object
        prepare_model(model, self.device)
        last = channels_last(model)
        was_training = model.training
        model.eval()
        outs = []
        try:
            with torch.no_grad():
                for i in range(0, max(len(x), 1), self.batch_size):
                    xb = to_device_batch(x[i : i + self.batch_size], self.device, last)
                    with autocast(self.device):
                        out = model.forward_blocks(xb, start, stop)
                    outs.append(out.float().contiguous().cpu())
        finally:
            model.train(was_training)
        return torch.cat(outs)

    def features(self, backbone: Backbone, domain: Domain) -> np.ndarray:
        """Penultimate features (output of the last block, flattened), float32 ``N x D``."""
        return self.prefix(backbone, domain, backbone.depth).numpy()

    def logits(self, backbone: Backbone, domain: Domain) -> np.ndarray | None:
        """The source head's logits on ``domain`` (``None`` when the backbone has no source head)."""
        if not backbone.source_classes:
            return None
        feats = self.prefix(backbone, domain, backbone.depth)
        head = backbone.head
        was_training = head.training
        head.eval()
        try:
            with torch.no_grad():
                p = next(head.parameters())
                out = head(feats.to(p.device, p.dtype)).float().cpu().numpy()
        finally:
            head.train(was_training)
        return out

    def clear(self) -> None:
        """Forget everything held in memory (files under ``root`` stay)."""
        self._mem.clear()
