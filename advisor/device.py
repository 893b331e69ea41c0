"""Where tensors live and how many CPU threads torch uses: one code path for CPU and CUDA.

``resolve_device`` turns the user's ``--device`` into a validated torch device string;
``autocast`` is automatic mixed precision on CUDA (bf16 where supported, else fp16 with a
``GradScaler``) and a no-op on the CPU, so training code never branches on the device.
``TRANSFER_ADVISOR_AMP`` changes that: ``off`` (float32 everywhere) or ``bf16`` (bf16 on the CPU
too, which is how the tests exercise the mixed-precision code paths without a GPU).
``prepare_model`` applies the CUDA settings once per fit (``cudnn.benchmark``, channels-last
weights for convnets) and ``to_device_batch`` turns a stored batch (uint8 images or float32) into
the float32 input the model takes, on the device, channels-last where the model is.

Threads under load: without ``--threads`` a process takes the cores that are not already busy
(``default_threads``), and OpenMP waits passively (``OMP_WAIT_POLICY=PASSIVE``, set by
``advisor/__init__.py`` before torch loads unless the user set it): spinning intra-op threads on
oversubscribed cores made a run beside busy processes many times slower (BENCHMARKS.md, load).
``TRANSFER_ADVISOR_LEGACY_THREADS=1`` restores torch's defaults (for the benchmark's "before").
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import time
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


#: Set to 1 to keep torch's own thread count and OpenMP's wait policy (the old behaviour).
LEGACY_THREADS_ENV = "TRANSFER_ADVISOR_LEGACY_THREADS"
#: ``--threads`` may ask for at most this many threads per core (more only oversubscribes, and
#: very large counts crash OpenMP).
MAX_THREADS_PER_CORE = 4


def legacy_threads() -> bool:
    """Whether the old thread policy is asked for (``TRANSFER_ADVISOR_LEGACY_THREADS=1``)."""
    return os.environ.get(LEGACY_THREADS_ENV, "").strip() not in ("", "0")


def cpu_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS tells, else the machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def busy_cores(samples: int = 5, interval: float = 0.02) -> float:
    """How many cores other processes keep busy now.

    Linux: the median over a few samples of the runnable tasks in ``/proc/loadavg`` minus this
    process (the one-minute load average lags by a minute: busy processes that just started would
    not count yet). Elsewhere: ``os.getloadavg()``'s one-minute value; 0 when neither is known.
    """
    counts = []
    for i in range(samples):
        try:
            fields = open("/proc/loadavg").read().split()  # noqa: SIM115 - one short read
            counts.append(int(fields[3].split("/")[0]) - 1)
        except (OSError, IndexError, ValueError):
            break
        if i + 1 < samples:
            time.sleep(interval)
    if counts:
        return float(max(0.0, statistics.median(counts)))
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def default_threads(cores: int | None = None, busy: float | None = None) -> int:
    """Threads for a process given no ``--threads``: the cores not already busy, at least 1.

    Several workers started on one machine thus end with about one thread each, and a run beside
    busy processes does not fight them for cores it cannot get.
    """
    cores = cpu_cores() if cores is None else cores
    busy = busy_cores() if busy is None else busy
    return max(1, min(cores, int(cores - busy + 0.5)))


def check_threads(n: int) -> int:
    """``--threads`` within 1 .. cores x ``MAX_THREADS_PER_CORE``; one-line InputError otherwise."""
    limit = cpu_cores() * MAX_THREADS_PER_CORE
    if not 1 <= int(n) <= limit:
        raise InputError(f"--threads must be between 1 and {limit} ({MAX_THREADS_PER_CORE} per core on this "
                         f"machine's {cpu_cores()} cores), got {n}")
    return int(n)


def set_threads(n: int | None) -> int:
    """Set torch's intra-op CPU threads for this process; returns the count in force.

    ``n`` (``--threads``) always wins, within ``check_threads``' bounds; ``None`` takes
    ``default_threads`` (or torch's own default under ``TRANSFER_ADVISOR_LEGACY_THREADS``).
    """
    if n is not None:
        torch.set_num_threads(check_threads(n))
    elif not legacy_threads():
        torch.set_num_threads(default_threads())
    return torch.get_num_threads()


def is_cuda(device: str | torch.device) -> bool:
    """Whether ``device`` is a CUDA device."""
    return torch.device(device).type == "cuda"


#: ``auto`` (default: mixed precision on CUDA only), ``off`` (float32 everywhere) or ``bf16``
#: (bf16 autocast on the CPU as well; for tests and CPUs with fast bf16).
AMP_ENV = "TRANSFER_ADVISOR_AMP"


def amp_mode() -> str:
    """``TRANSFER_ADVISOR_AMP``: ``auto`` unless set to ``off`` or ``bf16``."""
    mode = os.environ.get(AMP_ENV, "").strip().lower() or "auto"
    if mode not in ("auto", "off", "bf16"):
        raise InputError(f"{AMP_ENV} must be auto, off or bf16, not {mode!r}")
    return mode


def amp_dtype(device: str | torch.device) -> torch.dtype | None:
    """The autocast dtype on ``device``: bf16 (or fp16 without bf16 support) on CUDA, None on CPU.

    ``TRANSFER_ADVISOR_AMP=off`` gives None everywhere, ``bf16`` gives bf16 on the CPU too.
    """
    mode = amp_mode()
    if mode == "off":
        return None
    if not is_cuda(device):
        return torch.bfloat16 if mode == "bf16" else None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def autocast(device: str | torch.device) -> Iterator[None]:
    """Mixed precision where ``amp_dtype`` says so (CUDA by default), else nothing (float32)."""
    dtype = amp_dtype(device)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=torch.device(device).type, dtype=dtype):
        yield


def is_convnet(model: torch.nn.Module) -> bool:
    """Whether ``model`` holds 2-d convolutions (the models that gain from channels-last)."""
    return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())


def prepare_model(model: torch.nn.Module, device: str | torch.device) -> torch.nn.Module:
    """Move ``model`` to ``device``; on CUDA turn on ``cudnn.benchmark`` and give convnets channels-last.

    Channels-last is the layout tensor cores read without transposes; on the CPU the model keeps
    the default layout, so CPU results do not change with this call.
    """
    model.to(device)
    if is_cuda(device):
        torch.backends.cudnn.benchmark = True
        if is_convnet(model):
            model.to(memory_format=torch.channels_last)
    return model


def channels_last(model: torch.nn.Module) -> bool:
    """Whether ``model``'s first 4-d weight is stored channels-last (set by ``prepare_model``)."""
    for p in model.parameters():
        if p.dim() == 4:
            return p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
    return False


def to_float(x: torch.Tensor) -> torch.Tensor:
    """A stored batch as float32: uint8 images become [0, 1] (divided by 255), floats stay as they are."""
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    return x if x.dtype == torch.float32 else x.float()


def to_device_batch(x: torch.Tensor, device: str | torch.device, channels_last_: bool = False) -> torch.Tensor:
    """``x`` moved to ``device`` (non-blocking) and converted by ``to_float`` there (uint8 travels as uint8)."""
    x = to_float(x.to(device, non_blocking=True))
    if channels_last_ and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def grad_scaler(device: str | torch.device) -> torch.amp.GradScaler:
    """A loss scaler, enabled only for fp16 autocast (bf16 and float32 need none)."""
    return torch.amp.GradScaler("cuda", enabled=amp_dtype(device) == torch.float16)
