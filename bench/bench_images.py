"""Pretrained image models on the CPU at 224 px: memory of loading, resnet18 speed, the cached probe.

``python -m bench.bench_images [--photos 3000] [--probe 1000] [--epochs 2] [--threads N]`` builds
ImageFolders of 224-px colour JPEGs from the shared MNIST/USPS 16-px arrays (upsampled, each image
tinted with a seeded colour so the set holds RGB photos) under a temporary folder, then measures:

- the peak RSS of a fresh process that loads ``--photos`` of them with ``load_domain`` (the
  decoded set is uint8: 3,000 x 3 x 224 x 224 bytes = 452 MB);
- resnet18 inference and training images/s at 224 px (batch 32, after one warm-up batch);
- one linear-probe trial (freeze depth 5, ``--epochs`` epochs, batch 32) on ``--probe`` target
  images with a 200-image validation split, through ``advisor.search.training.train``: uncached
  (the frozen blocks run on every batch) vs cached (the prefix computed once: the trial itself,
  and the trial plus that one-time computation); both must give the same validation predictions.

Prints one JSON document; the figures are for this machine and thread count only.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

DATA = Path("/work/shared/data/mnist_usps_jda")
SIDE = 224


def write_folder(root: Path, n: int, side: int = SIDE, dataset: str = "mnist", seed: int = 0) -> Path:
    """``n`` RGB JPEGs of ``side`` px in class folders, from the shared 16-px digits (seeded order, cycled)."""
    from PIL import Image

    z = np.load(Path(DATA) / f"{dataset}.npz")
    X, y = z["X"], z["y"]
    rng = np.random.default_rng(seed)
    tints = rng.uniform(0.4, 1.0, size=(n, 3))
    order = rng.permutation(len(X))  # the arrays are sorted by class: a seeded shuffle mixes them
    for i in range(n):
        j = int(order[i % len(X)])
        folder = root / f"digit{int(y[j])}"
        folder.mkdir(parents=True, exist_ok=True)
        grey = Image.fromarray(X[j]).resize((side, side), Image.Resampling.BILINEAR)
        rgb = (np.asarray(grey, dtype=np.float32)[..., None] * tints[i]).astype(np.uint8)
        Image.fromarray(rgb, "RGB").save(folder / f"{i:05d}.jpg", quality=90)
    return root


def peak_rss_loading(root: Path) -> dict[str, Any]:
    """Load ``root`` in a fresh process; its peak RSS (``VmHWM`` of the child itself) and the array it holds.

    The child reads its own high-water mark: ``getrusage(RUSAGE_CHILDREN)`` would report at least
    the parent's RSS at fork time (Linux keeps the larger of the two across ``exec``).
    """
    code = ("import sys, json; from advisor.data.loaders import load_domain; "
            "d = load_domain(sys.argv[1], name='photos', image_size=224); "
            "hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')); "
            "print(json.dumps({'n': len(d), 'shape': list(d.X.shape), 'dtype': str(d.X.dtype), "
            "'array_mb': round(d.X.nbytes / 2**20, 1), 'peak_rss_mb': round(hwm / 1024, 1)}))")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    doc.update({"load_s": round(time.perf_counter() - started, 1),
                "note": "peak RSS (VmHWM) of the whole loading process: Python, numpy, Pillow and the array"})
    return doc


def resnet_speed(batch: int = 32, batches: int = 3, device: str = "cpu") -> dict[str, float]:
    """resnet18 images/s at 224 px: inference (eval, no grad) and training (forward, backward, Adam step)."""
    from advisor.device import autocast, prepare_model
    from advisor.models.architectures import build
    from advisor.models.backbone import ModelSpec

    model = build(ModelSpec("resnet18", "images", (3, SIDE, SIDE)), 10, seed=0)
    prepare_model(model, device)
    x = torch.rand(batch, 3, SIDE, SIDE, device=device)
    if device != "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(batch, device=device) % 10
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def timed(step: Any) -> float:
        step()  # warm-up (and cudnn autotuning)
        sync()
        t = time.perf_counter()
        for _ in range(batches):
            step()
        sync()
        return batch * batches / (time.perf_counter() - t)

    model.eval()

    def infer() -> None:
        with torch.no_grad(), autocast(device):
            model(x)

    inference = timed(infer)
    model.train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()

    training = timed(step)
    return {"inference_img_s": round(inference, 1), "train_img_s": round(training, 1), "batch": batch}


def probe_trial(target: Path, val: Path, epochs: int, device: str = "cpu") -> dict[str, Any]:
    """One linear-probe trial (freeze = depth) uncached vs cached on the given folders; seconds and agreement."""
    from advisor.data.loaders import load_domain
    from advisor.features.cache import FeatureCache
    from advisor.models.architectures import build
    from advisor.models.backbone import ModelSpec
    from advisor.plugin.contracts import TransferTask
    from advisor.search.training import TrainConfig, train

    train_d = load_domain(target, name="target", image_size=SIDE)
    val_d = load_domain(val, name="val", image_size=SIDE)
    backbone = build(ModelSpec("resnet18", "images", (3, SIDE, SIDE)), 10, seed=0)
    task = TransferTask(source=None, target_train=train_d, target_val=val_d, backbone=backbone,
                        cache=FeatureCache(device=device), batch_size=32, device=device)
    k = backbone.depth

    def trial(use_cache: bool) -> tuple[float, Any]:
        cfg = TrainConfig(epochs=epochs, lr=1e-3, freeze=k, use_cache=use_cache, batch_size=32, augment=False)
        t = time.perf_counter()
        fit = train(task, backbone.with_new_head(10, seed=0), cfg, None)
        return time.perf_counter() - t, fit

    uncached_s, uncached = trial(False)
    t = time.perf_counter()
    for d in (train_d, val_d):
        task.cache.prefix(backbone, d, k)
    fill_s = time.perf_counter() - t
    cached_s, cached = trial(True)
    agree = float(np.mean(uncached.val_pred == cached.val_pred))
    return {"target_images": len(train_d), "val_images": len(val_d), "epochs": epochs, "freeze": k,
            "uncached_trial_s": round(uncached_s, 2), "cached_trial_s": round(cached_s, 3),
            "cache_fill_s": round(fill_s, 2), "speedup_trial": round(uncached_s / cached_s, 1),
            "speedup_including_fill": round(uncached_s / (cached_s + fill_s), 2),
            "val_prediction_agreement": agree}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=3000)
    ap.add_argument("--probe", type=int, default=1000)
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    from advisor.device import set_threads

    threads = set_threads(args.threads)
    doc: dict[str, Any] = {"bench": "images", "machine": platform.processor() or platform.machine(),
                           "torch": torch.__version__, "threads": threads}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        write_folder(root / "photos", args.photos, dataset="mnist")
        doc["write_photos_s"] = round(time.perf_counter() - t, 1)
        doc["loading"] = peak_rss_loading(root / "photos")
        doc["resnet18_224px"] = resnet_speed()
        write_folder(root / "probe", args.probe, dataset="usps", seed=1)
        write_folder(root / "val", args.val, dataset="usps", seed=2)
        doc["linear_probe"] = probe_trial(root / "probe", root / "val", args.epochs)
    load = doc["loading"]
    doc["lines"] = [
        f"peak RSS loading {load['n']:,} photos at 224 px: {load['peak_rss_mb']:.0f} MB "
        f"({load['dtype']} array {load['array_mb']:.0f} MB)",
        f"resnet18 224 px on the CPU ({threads} threads): inference {doc['resnet18_224px']['inference_img_s']} img/s, "
        f"training {doc['resnet18_224px']['train_img_s']} img/s",
        f"linear-probe trial on {doc['linear_probe']['target_images']:,} target images: uncached "
        f"{doc['linear_probe']['uncached_trial_s']} s, cached {doc['linear_probe']['cached_trial_s']} s "
        f"({doc['linear_probe']['speedup_trial']}x; cache filled once in {doc['linear_probe']['cache_fill_s']} s)",
    ]
    print(json.dumps(doc, indent=2))
    return doc


if __name__ == "__main__":
    main()
