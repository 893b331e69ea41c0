"""Calibration and power of the verdict, against a ground truth the verdict does not define (issue 16 item 2).

``python -m bench.calibration [--scenarios NAME ...] [--scenario-file TOML] [--splits 0 1 2] [--seeds 22]
[--out FILE]`` (run from the repository root; default: the three built-in scenarios on splits 0-2 and six
real-data scenarios of ``bench/scenarios/shared_data.toml`` (Office-Caltech SURF, MNIST/USPS) on split 0;
writes ``bench/results/calibration.json`` and, next to it, ``calibration.preds.npz``: every cell's test labels
and per-seed test predictions of both strategies, so another interval rule can be replayed on the same fits
without training). ``--merge A.json B.json`` joins two processes' halves (and their ``.preds.npz`` files).

Rules (documented choices):

- **Cells**: each scenario × target split seed. In each cell ``advisor.recommend`` runs with
  ``--strategies finetune`` (every baseline runs too) and its default budget; the setting the search
  chose for ``finetune`` and for ``target_only`` (``strategies[].params``, the best epoch included) is
  then retrained on train+val with ``--seeds`` seeds (``split + 1000 r``) and scored on test.
- **The verdict's rule, as the advisor applies it**: a first look with 5 retrains per arm; when it does not
  commit but ``advisor.verdict.worth_another_look`` says the gain is promising, a second look with 10 per arm;
  each look at ``advisor.verdict.LOOK_LEVEL`` (``verdict_in_looks``).
- **Calibration**: a strategy against itself. For ``finetune`` and ``target_only`` in every cell,
  ``DRAWS`` random pairs of disjoint groups of seeds (5 for the first look, 5 more each for a second)
  go through that rule; any code other than ``no_gain`` is a false alarm. Reported as k/n with a
  Clopper–Pearson 95% interval, next to what the samples-only paired bootstrap on the first 5 seeds
  (the rule before issue 16) would have said.
- **Power**: the oracle's gain is ``finetune`` − ``target_only`` over the first ``ORACLE_SEEDS`` (12)
  seeds of each, decided by this module's fixed rule (``oracle_sign``: the 12-seed mean difference,
  counted only when more than ``POWER_MARGIN`` = 2 points from zero); the advisor's verdict is
  the rule above on the seeds the oracle did not use (``DRAWS`` draws of which 5 come first; all 10 at a
  second look). A case
  is right when the verdict has the oracle's sign (``transfer_helps`` for a gain, ``transfer_hurts``
  for a loss); ``no_gain`` is not right. Power = right / cases.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from advisor.search.scoring import paired_bootstrap_diff, seed_scores
from advisor.verdict import decide, worth_another_look

#: Seeds per group in a comparison (the advisor's default ``n_seeds``).
GROUP = 5
#: Seeds behind the oracle's gain in the power check.
ORACLE_SEEDS = 12
#: Random draws of groups per strategy and cell.
DRAWS = 6
#: The oracle's gain must be this far from zero (a fraction: 2 points) to count in the power check.
POWER_MARGIN = 0.02
STRATEGIES = ("finetune", "target_only")
DEFAULT_SCENARIOS = ("digits-shift", "digits-conflict", "digits-distant")
#: Real-data scenarios (from ``DEFAULT_SCENARIO_FILE``) run on the first split only by default.
DEFAULT_FILE_SCENARIOS = ("office-amazon-caltech-3", "office-caltech-amazon-3", "office-dslr-webcam-3",
                          "office-webcam-amazon-10", "digits-usps-mnist-3", "digits-mnist-usps-3")
DEFAULT_SCENARIO_FILE = "bench/scenarios/shared_data.toml"
DEFAULT_OUT = "bench/results/calibration.json"


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval for k successes in n trials."""
    from scipy.stats import beta

    if n == 0:
        return 0.0, 1.0
    a = (1 - level) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return lo, hi


def oracle_sign(score_name: str, y: np.ndarray, pred_b: np.ndarray, pred_t: np.ndarray) -> int:
    """The bench's fixed ground-truth rule: the sign of the many-seed mean gain, 0 within ``POWER_MARGIN``."""
    gain = float(seed_scores(score_name, y, pred_b).mean() - seed_scores(score_name, y, pred_t).mean())
    return 0 if abs(gain) <= POWER_MARGIN else (1 if gain > 0 else -1)


def verdict_in_looks(score_name: str, y: np.ndarray, b: np.ndarray, t: np.ndarray, seed: int) -> tuple[str, int]:
    """The advisor's rule on two arms of ``2 * GROUP`` seeds each: the first ``GROUP`` decide at the first look,
    all of them at the second when ``worth_another_look`` (as ``advisor.pipeline.finalize`` does). (code, looks)."""
    v = decide(score_name, y, "b", b[:GROUP], "t", t[:GROUP], 0.0, 0.0, seed=seed)
    if worth_another_look(v):
        v = decide(score_name, y, "b", b, "t", t, 0.0, 0.0, seed=seed, looks=2)
    return v.code, v.looks


def null_comparisons(score_name: str, y: np.ndarray, preds: np.ndarray, draws: int,
                     rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(comparisons, verdict false alarms, samples-only bootstrap false alarms, second looks) of ``preds``
    against itself: two disjoint groups of ``2 * GROUP`` seeds per draw (the second half only if looked at)."""
    alarms = old = second = 0
    for d in range(draws):
        idx = rng.permutation(len(preds))
        a, b = preds[idx[:2 * GROUP:2]], preds[idx[1:2 * GROUP:2]]  # first halves: the first look's seeds
        a = np.concatenate([a, preds[idx[2 * GROUP:3 * GROUP]]])
        b = np.concatenate([b, preds[idx[3 * GROUP:4 * GROUP]]])
        code, looks = verdict_in_looks(score_name, y, a, b, d)
        alarms += code != "no_gain"
        second += looks == 2
        _, lo, hi = paired_bootstrap_diff(score_name, y, a[:GROUP], b[:GROUP], seed=d)
        old += lo > 0 or hi < 0
    return draws, alarms, old, second


def power_cases(score_name: str, y: np.ndarray, pred_b: np.ndarray, pred_t: np.ndarray, draws: int,
                rng: np.random.Generator) -> tuple[int, int, int]:
    """(oracle sign, cases, right verdicts): the first ``ORACLE_SEEDS`` seeds decide the truth, the rest the verdict
    (``GROUP`` drawn for the first look, the remaining ones added at a second look)."""
    sign = oracle_sign(score_name, y, pred_b[:ORACLE_SEEDS], pred_t[:ORACLE_SEEDS])
    if sign == 0:
        return 0, 0, 0
    rest_b, rest_t = pred_b[ORACLE_SEEDS:], pred_t[ORACLE_SEEDS:]
    right = 0
    for d in range(draws):
        b = rest_b[rng.permutation(len(rest_b))[:2 * GROUP]]
        t = rest_t[rng.permutation(len(rest_t))[:2 * GROUP]]
        code, _ = verdict_in_looks(score_name, y, b, t, d)
        right += code == ("transfer_helps" if sign > 0 else "transfer_hurts")
    return sign, draws, right


@dataclass
class Cell:
    """One scenario and split: the chosen settings, per-seed test scores and the counts."""

    scenario: str
    split: int
    params: dict[str, dict[str, Any]]
    test_scores: dict[str, list[float]]
    comparisons: int = 0
    false_alarms: int = 0
    samples_only_false_alarms: int = 0
    second_looks: int = 0
    oracle_gain: float | None = None
    oracle_sign: int = 0
    power_cases: int = 0
    power_right: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def preds_path(out: str | Path) -> Path:
    """Where the per-seed test predictions of a result file live: ``NAME.preds.npz`` beside ``NAME.json``."""
    out = Path(out)
    return out.with_name(out.stem + ".preds.npz")


def run_cell(name: str, split: int, n_seeds: int, registry: Any, log: Any = print,
             keep: dict[str, np.ndarray] | None = None) -> Cell:
    """Search, retrain both strategies with ``n_seeds`` seeds, and count false alarms and power cases.
    ``keep`` receives the cell's test labels and predictions (``<scenario>/<split>/y`` and ``.../<strategy>``)."""
    from advisor.features.cache import FeatureCache
    from advisor.models.inputs import InputRequest, resolve_inputs
    from advisor.pipeline import RecommendOptions, build_task, recommend
    from advisor.search.training import predict

    t0 = time.time()
    request = InputRequest(demo=name, seed=split, device="cpu")
    run_dir = tempfile.mkdtemp(prefix="calibration-")
    try:
        doc = recommend(request, RecommendOptions(strategies="finetune", run_dir=run_dir, threads=1), registry)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    rows = {r["strategy"]: r for r in doc["strategies"]}
    params = {s: dict(rows[s]["params"]) for s in STRATEGIES}
    inputs = resolve_inputs(request, registry)
    task = build_task(inputs, request, doc["score"], 30, FeatureCache(None), "cpu")
    full = replace(task, target_train=task.target_train.concat(task.target_val, name="target/train+val"),
                   target_val=None)
    test = inputs.splits.test
    preds: dict[str, np.ndarray] = {}
    for s in STRATEGIES:
        strategy = registry.strategy(s)
        preds[s] = np.stack([predict(strategy.fit(replace(full, seed=split + 1000 * r), dict(params[s]), None).model,
                                     test.X, "cpu") for r in range(n_seeds)])
    cell = Cell(name, split, params, {s: [round(v, 4) for v in seed_scores(doc["score"], test.y, p)]
                                      for s, p in preds.items()})
    if keep is not None:
        keep[f"{name}/{split}/y"] = np.asarray(test.y, dtype=np.int16)
        keep.update({f"{name}/{split}/{s}": p.astype(np.int16) for s, p in preds.items()})
    rng = np.random.default_rng(1000 * split + len(name))
    for s in STRATEGIES:
        n, k, old, second = null_comparisons(doc["score"], test.y, preds[s], DRAWS, rng)
        cell.comparisons += n
        cell.false_alarms += k
        cell.samples_only_false_alarms += old
        cell.second_looks += second
    b, t = preds["finetune"], preds["target_only"]
    cell.oracle_gain = round(float(seed_scores(doc["score"], test.y, b[:ORACLE_SEEDS]).mean()
                                   - seed_scores(doc["score"], test.y, t[:ORACLE_SEEDS]).mean()), 4)
    cell.oracle_sign, cell.power_cases, cell.power_right = power_cases(doc["score"], test.y, b, t, DRAWS, rng)
    cell.seconds = round(time.time() - t0, 1)
    log(f"[{name} split {split}] false alarms {cell.false_alarms}/{cell.comparisons} (samples-only "
        f"{cell.samples_only_false_alarms}); oracle gain {100 * cell.oracle_gain:+.1f} points, power "
        f"{cell.power_right}/{cell.power_cases}; {cell.seconds:.0f} s")
    return cell


def summarize(cells: list[Cell]) -> dict[str, Any]:
    """The figures of issue 16 item 2 over every cell."""
    n = sum(c.comparisons for c in cells)
    k = sum(c.false_alarms for c in cells)
    old = sum(c.samples_only_false_alarms for c in cells)
    second = sum(c.second_looks for c in cells)
    cases = sum(c.power_cases for c in cells)
    right = sum(c.power_right for c in cells)
    lo, hi = clopper_pearson(k, n)
    return {
        "comparisons": n, "false_alarms": k, "false_alarm_rate": round(k / n, 4) if n else None,
        "false_alarms_ci95": [round(lo, 4), round(hi, 4)], "target_false_alarms_per_100": 8,
        "samples_only_false_alarms": old, "second_looks": second,
        "power": round(right / cases, 4) if cases else None, "power_cases": cases, "power_right": right,
        "target_power": 0.8,
        "scenarios": sorted({c.scenario for c in cells}), "cells": len(cells),
    }


def markdown(summary: dict[str, Any]) -> str:
    """The lines BENCHMARKS.md shows."""
    s = summary
    lo, hi = s["false_alarms_ci95"]
    power = "n/a (no cell's oracle gain was more than 2 points from zero)" if s["power"] is None else (
        f"{s['power_right']}/{s['power_cases']} = {100 * s['power']:.0f}% right sign")
    return "\n".join([
        "| figure | measured | goal |", "|---|---|---|",
        f"| false alarms, strategy vs itself (5 vs 5 seeds) | {s['false_alarms']}/{s['comparisons']} "
        f"(95% Clopper–Pearson [{100 * lo:.1f}%, {100 * hi:.1f}%]) | ≤ 8 in 100 |",
        f"| (before: samples-only bootstrap) | {s['samples_only_false_alarms']}/{s['comparisons']} | |",
        f"| comparisons that took a second look (10 vs 10 seeds) | {s.get('second_looks', 0)}/{s['comparisons']} "
        "| |",
        f"| power where the 12-seed gain is > 2 points from zero | {power} | ≥ 80% |",
        f"| scenarios × splits | {', '.join(s['scenarios'])} ({s['cells']} cells) | ≥ 8 scenarios |",
    ]) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the cells and write the JSON (and print the Markdown table)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="*", default=None,
                        help="scenario names, each on every --splits (default: the built-ins on --splits and "
                             "DEFAULT_FILE_SCENARIOS on split 0)")
    parser.add_argument("--scenario-file", default=DEFAULT_SCENARIO_FILE,
                        help="TOML file whose scenarios are registered next to the built-ins")
    parser.add_argument("--splits", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--seeds", type=int, default=ORACLE_SEEDS + 2 * GROUP,
                        help="retrains per strategy and cell (at least 12 + 10 and 4 x 5)")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--merge", nargs="+", metavar="JSON",
                        help="run nothing: join the cells of these result files (e.g. two processes' halves)")
    args = parser.parse_args(argv)
    if args.merge:
        docs = [json.loads(Path(f).read_text()) for f in args.merge]
        merged = [Cell(**c) for d in docs for c in d["per_cell"]]
        summary = summarize(merged)
        doc = {**summary, "date": max(d["date"] for d in docs), "argv": sys.argv[1:] if argv is None else argv,
               "seeds_per_cell": docs[0]["seeds_per_cell"], "seconds": round(sum(d["seconds"] for d in docs), 1),
               "rules": docs[0]["rules"], "per_cell": [asdict(c) for c in merged]}
        Path(args.out).write_text(json.dumps(doc, indent=1))
        parts = [preds_path(f) for f in args.merge if preds_path(f).exists()]
        if parts:
            arrays: dict[str, np.ndarray] = {}
            for part in parts:
                with np.load(part) as z:
                    arrays.update({k: z[k] for k in z.files})
            np.savez_compressed(preds_path(args.out), **arrays)
        print(markdown(summary))
        return 0
    least = max(ORACLE_SEEDS + 2 * GROUP, 4 * GROUP)
    if args.seeds < least:
        print(f"error: --seeds must be at least {least}", file=sys.stderr)
        return 2

    import torch

    from advisor.plugin.registry import build_registry
    from bench.quality import QualityPlugin, load_specs

    torch.set_num_threads(1)
    specs = load_specs(args.scenario_file) if args.scenario_file else []
    registry = build_registry(third_party=False, plugins=[("quality", QualityPlugin(specs))])
    if args.scenarios is None:
        plan = [(n, k) for n in DEFAULT_SCENARIOS for k in args.splits] + [(n, 0) for n in DEFAULT_FILE_SCENARIOS]
    else:
        plan = [(n, k) for n in args.scenarios for k in args.splits]
    started = time.time()
    kept: dict[str, np.ndarray] = {}
    cells = [run_cell(name, split, args.seeds, registry, log=lambda m: print(m, file=sys.stderr, flush=True),
                      keep=kept) for name, split in plan]
    summary = summarize(cells)
    doc = {**summary, "date": time.strftime("%Y-%m-%d %H:%M"), "argv": sys.argv[1:] if argv is None else argv,
           "seeds_per_cell": args.seeds, "seconds": round(time.time() - started, 1),
           "rules": {"group": GROUP, "oracle_seeds": ORACLE_SEEDS, "draws": DRAWS, "power_margin": POWER_MARGIN},
           "per_cell": [asdict(c) for c in cells]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1))
    np.savez_compressed(preds_path(out), **kept)
    print(markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
