"""How much training the retrain on train+val should get: the search's epochs, or the search's steps?

``python -m bench.bench_retrain [--scenarios NAME ...] [--seeds 3] [--out bench/results/retrain.md]``
(run from the repository root).

The winner of a search is retrained on train+val, about 4x the rows of the train split on the Office
3-label tasks. Two readings of "the amount of training the search chose":

- **epochs kept** (what the engine does): the best epoch count, each epoch a pass over train+val, so
  about 4x the optimiser steps of the search;
- **steps kept**: the search's optimiser steps, i.e. the epochs scaled down by the data the retrain
  sees (``round(epochs * ceil(n_train / bs) / ceil(n_train+val / bs))`` passes, at least one).

Protocol: for each scenario (split seed 0) and strategy, the setting the pinned oracle chose
(``bench/results/shared/<scenario>.json``: a grid search whose choice does not depend on either reading)
is retrained on train+val under both schedules with ``--seeds`` seeds (``1000 r``) and scored on test;
the table shows the mean test accuracy of each and their difference in points. The choice between the
two readings was made from this table (it is the only evidence behind it).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

DEFAULT_SCENARIOS = ("office-caltech-amazon-3", "office-amazon-caltech-3", "office-webcam-amazon-3",
                     "office-dslr-caltech-3", "office-caltech-dslr-3", "office-dslr-amazon-3",
                     "digits-usps-mnist-3", "digits-mnist-usps-3")
STRATEGIES = ("target_only", "finetune", "progressive_unfreezing")
STORED = Path("bench/results/shared")
DEFAULT_OUT = "bench/results/retrain.md"


def steps_kept_epochs(epochs: int, n_train: int, n_full: int, bs: int) -> int:
    """Passes over ``n_full`` rows that take about the steps ``epochs`` passes over ``n_train`` took."""
    return max(1, round(epochs * math.ceil(n_train / bs) / math.ceil(n_full / bs)))


def run(scenarios: list[str], seeds: int, log=print) -> list[dict]:  # noqa: ANN001 - a print-like callable
    """Per scenario and strategy: mean test accuracy with the epochs kept and with the steps kept."""
    import torch

    from advisor.features.cache import FeatureCache
    from advisor.models.inputs import InputRequest, resolve_inputs
    from advisor.pipeline import build_task
    from advisor.plugin.registry import build_registry
    from advisor.search.training import default_batch_size, predict
    from bench.quality import QualityPlugin, load_specs

    torch.set_num_threads(1)
    specs = load_specs("bench/scenarios/shared_data.toml")
    registry = build_registry(third_party=False, plugins=[("quality", QualityPlugin(specs))])
    rows = []
    for name in scenarios:
        stored = json.loads((STORED / f"{name}.json").read_text())
        chosen = {r["strategy"]: r["params"] for r in stored["oracle"]["rows"]}
        request = InputRequest(demo=name, seed=0, device="cpu")
        inputs = resolve_inputs(request, registry)
        task = build_task(inputs, request, "accuracy", 30, FeatureCache(None), "cpu")
        full = replace(task, target_train=task.target_train.concat(task.target_val, name="target/train+val"),
                       target_val=None)
        test = inputs.splits.test
        n_train, n_full = len(task.target_train), len(full.target_train)
        for s in STRATEGIES:
            if s not in chosen:
                continue
            strategy = registry.strategy(s)
            params = dict(chosen[s])
            bs = int(params.get("batch_size", default_batch_size(task)))
            schedules = {"epochs_kept": int(params["epochs"]),
                         "steps_kept": steps_kept_epochs(int(params["epochs"]), n_train, n_full, bs)}
            means = {}
            for label, epochs in schedules.items():
                accs = []
                for r in range(seeds):
                    fit = strategy.fit(replace(full, seed=1000 * r), {**params, "epochs": epochs}, None)
                    accs.append(float((predict(fit.model, test.X, "cpu") == test.y).mean()))
                means[label] = float(np.mean(accs))
            row = {"scenario": name, "strategy": s, "n_train": n_train, "n_full": n_full, "batch_size": bs,
                   "epochs": schedules, "test_accuracy": {k: round(v, 4) for k, v in means.items()},
                   "epochs_minus_steps_points": round(100 * (means["epochs_kept"] - means["steps_kept"]), 2)}
            log(f"{name} {s}: epochs kept {means['epochs_kept']:.3f}, steps kept {means['steps_kept']:.3f}")
            rows.append(row)
    return rows


def markdown(rows: list[dict], seeds: int, seconds: float) -> str:
    """The table BENCHMARKS.md shows, with the summary line first."""
    diffs = [r["epochs_minus_steps_points"] for r in rows]
    wins = sum(d > 0 for d in diffs)
    lines = [f"Epochs kept minus steps kept, mean over {len(rows)} (scenario, strategy) pairs: "
             f"**{np.mean(diffs):+.2f} points** of test accuracy (epochs kept ahead in {wins} of {len(rows)}; "
             f"{seeds} seeds each; {seconds:.0f} s). Steps kept is run as whole passes over train+val, the "
             "search's steps divided by the steps of one pass, rounded (at least one).", "",
             "| scenario | strategy | train → train+val rows | epochs (kept / steps kept) | epochs kept | "
             "steps kept | difference (points) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['strategy']} | {r['n_train']} → {r['n_full']} | "
                     f"{r['epochs']['epochs_kept']} / {r['epochs']['steps_kept']} | "
                     f"{r['test_accuracy']['epochs_kept']:.3f} | {r['test_accuracy']['steps_kept']:.3f} | "
                     f"{r['epochs_minus_steps_points']:+.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="*", default=list(DEFAULT_SCENARIOS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    started = time.time()
    rows = run(args.scenarios, args.seeds, log=lambda m: print(m, file=sys.stderr, flush=True))
    md = markdown(rows, args.seeds, time.time() - started)
    Path(args.out).write_text(md)
    Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
