"""Where tensors live and how many CPU threads torch uses: one code path for CPU and CUDA.

``resolve_device`` turns the user's ``--device`` into a validated torch device string;
``autocast`` is automatic mixed precision on CUDA (bf16 where supported, else fp16 with a
``GradScaler``) and a no-op on the CPU, so training code never branches on the device.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import torch

from advisor.errors import InputError

_CUDA = re.compile(r"^cuda(:(\d+))?$")


def resolve_device(spec: str = "auto") -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cpu``/``cuda``/``cuda:i`` are checked."""
    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return "cpu"
    m = _CUDA.match(spec)
    if not m:
        raise InputError(f"--device {spec!r} is not one of auto, cpu, cuda, cuda:<index>")
    if not torch.cuda.is_available():
        raise InputError(f"--device {spec}: CUDA is not available on this machine; use --device cpu")
    if m.group(2) is not None:
        index, count = int(m.group(2)), torch.cuda.device_count()
        if index >= count:
            raise InputError(f"--device {spec}: only {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return spec


def set_threads(n: int | None) -> None:
    """Set torch's intra-op CPU threads for this process (``None`` leaves torch's default).

    Per process, so several workers on one machine can each take a share of the cores
    instead of all oversubscribing them.
    """
    if n is None:
        return
    if int(n) < 1:
        raise InputError(f"--threads must be at least 1, got {n}")
    torch.set_num_threads(int(n))


def is_cuda(device: str | torch.device) -> bool:
    """Whether ``device`` is a CUDA device."""
    return torch.device(device).type == "cuda"


def amp_dtype(device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype on ``device``: bf16 (or fp16 without bf16 support) on CUDA, None on CPU."""
    if not is_cuda(device):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def autocast(device: str | torch.device) -> Iterator[None]:
    """Mixed precision on CUDA, nothing on the CPU (full float32 there)."""
    dtype = amp_dtype(device)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type="cuda", dtype=dtype):
        yield


def grad_scaler(device: str | torch.device) -> torch.amp.GradScaler:
    """A loss scaler, enabled only for fp16 autocast (bf16 and float32 need none)."""
    return torch.amp.GradScaler("cuda", enabled=amp_dtype(device) == torch.float16)
