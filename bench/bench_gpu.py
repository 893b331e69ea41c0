"""The device path, measured: resnet18 at 224 px with AMP, cached and uncached trials, host syncs, a recommendation.

``python -m bench.bench_gpu [--images 128] [--recommend-target 200] [--trials 2] [--max-epochs 3]``
runs the same measurements on the CPU and, when ``torch.cuda.is_available()``, on CUDA, with the
same seeds, and prints one JSON document:

- ``resnet18_224px``: inference and training images/s under ``advisor.device.autocast`` (bf16 on
  CUDA; float32 on the CPU unless ``TRANSFER_ADVISOR_AMP=bf16``), channels-last on CUDA;
- ``trials``: one linear-probe trial (freeze = depth) and one fine-tune trial (freeze 3 of 5) on
  ``--images`` 224-px photos (2 epochs, validation on the same images), each uncached and cached
  (the prefix computed once beforehand, ``cache_fill_s``), in seconds;
- ``host_syncs`` (CUDA only): synchronising calls counted by ``torch.cuda.set_sync_debug_mode``
  during a fine-tune fit without validation, per training step;
- ``recommend``: ``advisor recommend`` on ``--recommend-target`` USPS images (64 px, as JPEG
  folders) with an MNIST source, ``--trials`` trials per strategy: wall time and verdict code.
  The CPU and CUDA verdicts are compared (``verdicts_agree``).

Without CUDA the ``cuda`` section reads ``{"measured": false, ...}``: never an estimate.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.bench_images import SIDE, resnet_speed, write_folder


def trials(folder: Path, device: str) -> dict[str, Any]:
    """Probe and fine-tune trials on ``folder`` (224 px), cached vs uncached, seconds each."""
    from advisor.data.loaders import load_domain
    from advisor.features.cache import FeatureCache
    from advisor.models.architectures import build
    from advisor.models.backbone import ModelSpec
    from advisor.plugin.contracts import TransferTask
    from advisor.search.training import TrainConfig, train

    d = load_domain(folder, name="target", image_size=SIDE)
    backbone = build(ModelSpec("resnet18", "images", (3, SIDE, SIDE)), 10, seed=0)
    task = TransferTask(source=None, target_train=d, target_val=d, backbone=backbone,
                        cache=FeatureCache(device=device), batch_size=32, device=device)
    out: dict[str, Any] = {"images": len(d)}
    for label, k in (("linear_probe", backbone.depth), ("finetune_freeze3", 3)):
        row: dict[str, Any] = {}
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        for use_cache in (False, True):
            if use_cache:  # the prefix is computed once per search; timed apart from the trial
                t = time.perf_counter()
                task.cache.prefix(backbone, d, k)
                sync()
                row["cache_fill_s"] = round(time.perf_counter() - t, 3)
            cfg = TrainConfig(epochs=2, lr=1e-3, freeze=k, use_cache=use_cache, batch_size=32, augment=False)
            t = time.perf_counter()
            train(task, backbone.with_new_head(10, seed=0), cfg, None)
            sync()
            row["cached_s" if use_cache else "uncached_s"] = round(time.perf_counter() - t, 3)
        row["speedup"] = round(row["uncached_s"] / row["cached_s"], 1)
        out[label] = row
    return out


def host_syncs(folder: Path, device: str) -> dict[str, Any]:
    """Synchronising CUDA calls during a fine-tune fit (no validation), counted by torch's sync debug mode."""
    from advisor.data.loaders import load_domain
    from advisor.models.architectures import build
    from advisor.models.backbone import ModelSpec
    from advisor.plugin.contracts import TransferTask
    from advisor.search.training import TrainConfig, train

    d = load_domain(folder, name="target", image_size=SIDE)
    backbone = build(ModelSpec("resnet18", "images", (3, SIDE, SIDE)), 10, seed=0)
    task = TransferTask(source=None, target_train=d, target_val=None, backbone=backbone, batch_size=32,
                        device=device)
    cfg = TrainConfig(epochs=2, lr=1e-3, freeze=0, use_cache=False, batch_size=32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fit = train(task, backbone.with_new_head(10, seed=0), cfg, None)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = sum("synchroniz" in str(w.message).lower() for w in caught)
    steps = int(fit.info["steps"])
    return {"syncs": syncs, "steps": steps, "epochs": cfg.epochs, "syncs_per_step": round(syncs / steps, 3),
            "note": "includes the once-per-epoch NaN check and the end of fit; the target is 0 per step"}


def recommend(source: Path, target: Path, device: str, trials_n: int, max_epochs: int, cache: Path) -> dict:
    """``advisor recommend`` at 64 px on ``device``; wall time and the verdict."""
    cmd = [sys.executable, "-m", "advisor", "recommend", "--source", str(source), "--target", str(target),
           "--image-size", "64", "--device", device, "--trials", str(trials_n), "--max-epochs", str(max_epochs),
           "--seed", "0", "--run-dir", str(cache / f"run-{device.replace(':', '')}"), "--json"]
    env = {**os.environ, "TRANSFER_ADVISOR_CACHE": str(cache / f"cache-{device.replace(':', '')}"),
           "TRANSFER_ADVISOR_NO_PLUGINS": "1"}
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:] or [f"exit {out.returncode}"], "wall_s": seconds}
    doc = json.loads(out.stdout)
    rec = doc.get("recommendation") or {}
    return {"wall_s": round(seconds, 1), "strategy": rec.get("strategy"), "verdict_code": rec.get("verdict_code"),
            "test_gain": rec.get("test_gain"), "input": doc.get("input")}


def measure(device: str, folders: dict[str, Path], args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Every measurement on one device."""
    from advisor.device import amp_dtype

    torch.manual_seed(0)
    dtype = amp_dtype(device)
    out: dict[str, Any] = {"device": device, "amp": None if dtype is None else str(dtype).replace("torch.", "")}
    if device.startswith("cuda"):
        out["name"] = torch.cuda.get_device_name(torch.device(device))
    out["resnet18_224px"] = resnet_speed(batch=32 if device == "cpu" else 256, device=device)
    out["trials"] = trials(folders["photos"], device)
    if device.startswith("cuda"):
        out["host_syncs"] = host_syncs(folders["photos"], device)
    out["recommend"] = recommend(folders["source"], folders["target"], device, args.trials, args.max_epochs, tmp)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--recommend-source", type=int, default=500)
    ap.add_argument("--recommend-target", type=int, default=200)
    ap.add_argument("--trials", type=int, default=2)
    ap.add_argument("--max-epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip-cpu", action="store_true", help="measure CUDA only")
    args = ap.parse_args(argv)
    from advisor.device import set_threads

    threads = set_threads(args.threads)
    doc: dict[str, Any] = {"bench": "gpu", "torch": torch.__version__, "python": platform.python_version(),
                           "cpu_threads": threads, "cuda_available": torch.cuda.is_available()}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        folders = {"photos": write_folder(tmp / "photos", args.images, dataset="usps", seed=3),
                   "source": write_folder(tmp / "source", args.recommend_source, side=64, dataset="mnist", seed=4),
                   "target": write_folder(tmp / "target", args.recommend_target, side=64, dataset="usps", seed=5)}
        if not args.skip_cpu:
            doc["cpu"] = measure("cpu", folders, args, tmp)
        if torch.cuda.is_available():
            doc["cuda"] = measure("cuda", folders, args, tmp)
            verdicts = [doc[d]["recommend"].get("verdict_code") for d in ("cpu", "cuda") if d in doc]
            opposite = {"transfer_helps", "transfer_hurts"}
            doc["verdicts_agree"] = len(verdicts) < 2 or not (set(verdicts) == opposite)
        else:
            doc["cuda"] = {"measured": False, "reason": "torch.cuda.is_available() is False on this machine: "
                                                         "not measured"}
    print(json.dumps(doc, indent=2, default=str))
    return doc


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
