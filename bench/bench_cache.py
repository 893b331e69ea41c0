"""Per-epoch training time with the cached frozen prefix vs running the frozen blocks every batch.

``python -m bench.bench_cache [--n 512] [--threads 1] [--models resnet18,cnn]`` prints a
markdown table: for every freeze depth k, seconds per training epoch (no validation) through
``advisor.search.training.train`` with ``use_cache=True`` and ``False``, and the speed-up; the cache
build time (every depth, one incremental pass) is reported separately. Inputs are random
images: the timing does not depend on their content.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from advisor.data.domain import Domain
from advisor.device import set_threads
from advisor.features.cache import FeatureCache
from advisor.models.architectures import build
from advisor.models.backbone import Backbone, ModelSpec
from advisor.plugin.contracts import TransferTask
from advisor.search.training import TrainConfig, train

MODELS = {
    "resnet18": ModelSpec("resnet18", "images", (3, 64, 64)),
    "cnn": ModelSpec("cnn", "images", (1, 16, 16)),
}


def _task(spec: ModelSpec, n: int, batch_size: int) -> tuple[TransferTask, Backbone]:
    rng = np.random.default_rng(0)
    X = rng.random((n, *spec.input_shape), dtype=np.float32)
    y = np.arange(n) % 10
    domain = Domain("bench", X, y, tuple(str(i) for i in range(10)), "images")
    backbone = build(spec, 10, seed=0)
    task = TransferTask(source=None, target_train=domain, target_val=None, backbone=backbone,
                        cache=FeatureCache(), batch_size=batch_size)
    return task, backbone


def _epoch_seconds(task: TransferTask, backbone: Backbone, k: int, use_cache: bool, epochs: int) -> float:
    model = backbone.with_new_head(10, seed=0)
    cfg = TrainConfig(epochs=epochs, freeze=k, use_cache=use_cache, batch_size=task.batch_size)
    start = time.perf_counter()
    train(task, model, cfg, None)
    return (time.perf_counter() - start) / epochs


def bench_model(name: str, n: int, batch_size: int, epochs: int) -> list[str]:
    """Markdown rows for one model: every freeze depth, cached vs uncached."""
    spec = MODELS[name]
    task, backbone = _task(spec, n, batch_size)
    start = time.perf_counter()
    for k in range(1, backbone.depth + 1):  # incremental: each depth resumes from the previous one
        task.cache.prefix(backbone, task.target_train, k)
    build_s = time.perf_counter() - start
    rows = []
    for k in range(backbone.depth + 1):
        cached = _epoch_seconds(task, backbone, k, True, epochs)
        uncached = cached if k == 0 else _epoch_seconds(task, backbone, k, False, epochs)
        label = "linear probe" if k == backbone.depth else ("none frozen" if k == 0 else f"blocks[:{k}]")
        rows.append(f"| {name} | {k} ({label}) | {cached:.3f} | {uncached:.3f} | {uncached / cached:.1f}x |")
    rows.append(f"| {name} | cache build, all depths | {build_s:.3f} s once | | |")
    return rows


def main() -> None:
    """Run the benchmark and print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="training images")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=1, help="epochs timed per setting")
    parser.add_argument("--models", default="resnet18,cnn")
    args = parser.parse_args()
    set_threads(args.threads)
    torch.manual_seed(0)
    print(f"n = {args.n} images, batch {args.batch_size}, {args.threads} thread(s), "
          f"torch {torch.__version__}, CPU\n")
    print("| model | freeze depth k | cached s/epoch | uncached s/epoch | speed-up |")
    print("|---|---|---|---|---|")
    for name in args.models.split(","):
        for row in bench_model(name.strip(), args.n, args.batch_size, args.epochs):
            print(row, flush=True)


if __name__ == "__main__":
    main()
