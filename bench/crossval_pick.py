"""Should B and the reference be picked at the search's size (val) or at the retrain's (cross-validation)?

The search fits on the train split (30 rows on the Office 3-label scenarios) and scores on val (100 rows); the
verdict's retrains fit on train+val (130 rows). This replays the advisor's own runs of a quality-harness
folder (``bench.quality --out DIR`` keeps each run's ``report.json`` under ``DIR/runs/``): for every strategy
with a setting, that setting (the retrain's parameters) is

- cross-validated on train+val with ``advisor.search.crossval`` (3 stratified folds, one fresh seed each), and
- retrained on train+val with ``--seeds`` seeds and scored on test (what the verdict would see).

Then pick rules are compared on the same fits:

- ``val``: the run's own B and reference (the seed-repeat mean on val, one-standard-error rule);
- ``cv_all``: B and the reference by their cross-validated score, every strategy with a setting a candidate;
- ``cv_contenders``: the same, but the transfer candidates are those the race did not stop;
- ``cv_top3``: the same over the three best transfer strategies by val mean.

Ties (within one row of train+val) go to the run's quick advice. Per rule: B's regret against the best test
score among the run's strategies (points), the reference's likewise, the test gain B - reference, and the
verdicts whose sign contradicts the oracle's (gain below -2 points where the oracle says ``transfer_helps``,
above +2 where it says ``transfer_hurts``; the oracle is the harness's, per split).

    python -m bench.crossval_pick --runs DIR [DIR ...] [--seeds 3] [--out bench/results/crossval_pick.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

RULES = ("val", "cv_all", "cv_contenders", "cv_top3")
#: A test gain beyond this many points against the oracle's verdict counts as an opposite sign.
SIGN_POINTS = 2.0


def _run_key(folder: Path) -> tuple[str, int]:
    """(scenario, split) of a harness run folder ``<scenario>`` or ``<scenario>-split<k>``."""
    name = folder.name
    if "-split" in name:
        base, k = name.rsplit("-split", 1)
        return base, int(k)
    return name, 0


def _oracle_codes(results: Path) -> dict[tuple[str, int], str]:
    """The oracle's verdict per (scenario, split) from the harness's per-scenario JSON files."""
    codes = {}
    for f in results.glob("*.json"):
        doc = json.loads(f.read_text())
        if not isinstance(doc, dict) or "splits" not in doc or not isinstance(doc["splits"], list):
            continue
        for row in doc["splits"]:
            codes[(f.stem, int(row["split"]))] = row["oracle"]["verdict_code"]
    return codes


def _pick(scores: dict[str, float], candidates: list[str], prior: list[str], n: int) -> str | None:
    """The best candidate by score; within one row (1/n) of the top, the prior's order decides."""
    from advisor.verdict.rules import pick_best

    return pick_best({c: scores[c] for c in candidates if c in scores}, prior, n)


def replay_run(folder: Path, specs: dict[str, Any], seeds: int, log: Any = print) -> dict[str, Any]:
    """Cross-validated and test scores of every strategy's setting in one run, and each rule's picks."""
    import torch

    from advisor.features.cache import FeatureCache
    from advisor.models.inputs import InputRequest, resolve_inputs
    from advisor.pipeline import SEED_STEP, build_task
    from advisor.plugin.registry import build_registry
    from advisor.search.crossval import cross_validate
    from advisor.search.scoring import score
    from advisor.search.training import predict
    from bench.quality import QualityPlugin

    torch.set_num_threads(1)
    report = json.loads((folder / "report.json").read_text())
    scenario, split = _run_key(folder)
    spec = replace(specs[scenario], seed=specs[scenario].seed + split)
    registry = build_registry(third_party=False, plugins=[("quality", QualityPlugin([spec]))])
    request = InputRequest(demo=scenario, seed=spec.seed, device="cpu")
    inputs = resolve_inputs(request, registry)
    task = build_task(inputs, request, report["score"], 30, FeatureCache(None), "cpu")
    full = replace(task, target_train=task.target_train.concat(task.target_val, name="target/train+val"),
                   target_val=None)
    test = inputs.splits.test
    rows = {}
    for s in report["strategies"]:
        if not s["params"] or s["val_score"] is None:
            continue
        strategy = registry.strategy(s["strategy"])
        cv = cross_validate(strategy, task, dict(s["params"]), SEED_STEP)
        tests = [score(report["score"], test.y, predict(
            strategy.fit(replace(full, seed=task.seed + SEED_STEP * r), dict(s["params"]), None).model,
            test.X, "cpu")) for r in range(seeds)]
        rows[s["strategy"]] = {"role": s["role"], "stopped": s.get("stopped") is not None, "val": s["val_score"],
                               "cv": round(float(score(report["score"], cv.y, cv.pred)), 4),
                               "test": round(float(np.mean(tests)), 4)}
    prior = [r["strategy"] for r in report["advice"]["ranking"]]
    n_full = len(task.target_train) + len(task.target_val)
    refs = [n for n, r in rows.items() if r["role"] == "reference"]
    transfer = [n for n, r in rows.items() if r["role"] != "reference"]
    cv = {n: r["cv"] for n, r in rows.items()}
    top3 = sorted(transfer, key=lambda n: -rows[n]["val"])[:3]
    contenders = [n for n in transfer if not rows[n]["stopped"]] or transfer
    rec = report.get("recommendation") or {}
    picks = {"val": (rec.get("best_transfer_strategy"), rec.get("reference")),
             "cv_all": (_pick(cv, transfer, prior, n_full), _pick(cv, refs, prior, n_full)),
             "cv_contenders": (_pick(cv, contenders, prior, n_full), _pick(cv, refs, prior, n_full)),
             "cv_top3": (_pick(cv, top3, prior, n_full), _pick(cv, refs, prior, n_full))}
    log(f"{folder.name}: " + ", ".join(f"{k} {b}/{r}" for k, (b, r) in picks.items()))
    return {"run": folder.name, "scenario": scenario, "split": split, "rows": rows,
            "picks": {k: {"b": b, "reference": r} for k, (b, r) in picks.items()}}


def summarize(runs: list[dict[str, Any]], oracle: dict[tuple[str, int], str]) -> dict[str, Any]:
    """Per rule: mean regret of B and of the reference, mean test gain, opposite signs against the oracle."""
    out = {}
    for rule in RULES:
        b_reg, r_reg, gains, opposite, agree, n_oracle = [], [], [], 0, 0, 0
        for run in runs:
            b, ref = run["picks"][rule]["b"], run["picks"][rule]["reference"]
            rows = run["rows"]
            if b not in rows or ref not in rows:
                continue
            best = max(r["test"] for r in rows.values())
            b_reg.append(100 * (best - rows[b]["test"]))
            best_ref = max(r["test"] for r in rows.values() if r["role"] == "reference")
            r_reg.append(100 * (best_ref - rows[ref]["test"]))
            gain = 100 * (rows[b]["test"] - rows[ref]["test"])
            gains.append(gain)
            code = oracle.get((run["scenario"], run["split"]))
            if code is not None:
                n_oracle += 1
                sign = ("transfer_helps" if gain > SIGN_POINTS else "transfer_hurts" if gain < -SIGN_POINTS
                        else "no_gain")
                agree += sign == code
                opposite += {code, sign} == {"transfer_helps", "transfer_hurts"}
        out[rule] = {"runs": len(b_reg), "b_regret_points": round(float(np.mean(b_reg)), 2) if b_reg else None,
                     "reference_regret_points": round(float(np.mean(r_reg)), 2) if r_reg else None,
                     "mean_gain_points": round(float(np.mean(gains)), 2) if gains else None,
                     "sign_agrees_with_oracle": f"{agree}/{n_oracle}", "opposite_sign": opposite}
    return out


def main(argv: list[str] | None = None) -> int:
    from bench.quality import load_specs

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", required=True, nargs="+",
                    help="bench.quality --out folders (their runs/ and per-scenario JSON)")
    ap.add_argument("--scenarios", default="bench/scenarios/shared_data.toml")
    ap.add_argument("--seeds", type=int, default=3, help="test retrains per strategy")
    ap.add_argument("--only", nargs="*", help="scenario names (default: every run in the folder)")
    ap.add_argument("--out", default="bench/results/crossval_pick.json")
    args = ap.parse_args(argv)
    roots = [Path(r) for r in args.runs]
    specs = {s.name: s for s in load_specs(args.scenarios)}
    by_name = {p.name: p for root in roots if (root / "runs").is_dir() for p in sorted((root / "runs").iterdir())
               if (p / "report.json").exists() and _run_key(p)[0] in specs
               and (not args.only or _run_key(p)[0] in args.only)}  # a run in two folders: the later folder's
    folders = [by_name[name] for name in sorted(by_name)]
    if not folders:
        print(f"error: no run folders with a report.json under {', '.join(str(r / 'runs') for r in roots)}",
              file=sys.stderr)
        return 2
    t0 = time.time()
    runs = [replay_run(f, specs, args.seeds) for f in folders]
    oracle = {k: v for root in roots for k, v in _oracle_codes(root).items()}
    summary = summarize(runs, oracle)
    doc = {"protocol": __doc__.split("\n\n")[0], "runs_folder": ", ".join(str(r) for r in roots), "seeds": args.seeds,
           "seconds": round(time.time() - t0, 1), "summary": summary, "runs": runs}
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    for rule, s in summary.items():
        print(f"{rule:>14}: B regret {s['b_regret_points']} pts, "
              f"reference regret {s['reference_regret_points']}, gain {s['mean_gain_points']}, "
              f"sign agrees {s['sign_agrees_with_oracle']}, opposite {s['opposite_sign']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
