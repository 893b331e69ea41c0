"""Bring the quality harness's oracle cache to the current oracle version without rerunning what did not change.

``python -m bench.oracle_refresh --scenarios FILE [--splits N] [--oracle-cache DIR] [--only NAME ...]
[--report FILE]`` (run from the repository root).

Why: the oracle is cached (``bench/results/oracle/``) so that a harness rerun measures the advisor, not the
oracle again. Version 3 changed two things: the target-fitted models (``target_only``, ``target_linear``,
``pooled_linear``) gained a scale floor in their standardisation (``Standardize.set_stats``), and the oracle's
reference became the best reference-role row (``bench.quality.oracle_decision``) instead of ``target_only``
alone. The other strategies' code did not change since the version-2 files were made.

- **Each scenario's own seed** (split 0): the stored per-scenario results (``--reuse-oracle DIR``) keep no test
  predictions and their rows predate the α reparametrisation, so the current oracle is run in full there and
  cached (``bench.quality.cached_oracle``); the pinned results stay the compute denominator.
- **Every other split seed**: the version-2 file (``split-<k>-v2-*.json.gz``) is read, the rows of
  ``refit_names`` are refitted on the oracle's own grid and seeds (``bench.quality.tune_strategy``), every
  other row and its test predictions are kept, the split is decided again, and the file is written under the
  key the harness computes (``bench.quality.oracle_key``), so ``bench.quality --splits N`` reads it without
  training.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from advisor.errors import InputError

from . import oracle_cache
from .quality import (
    LINEAR_GRIDS,
    Prepared,
    QualityPlugin,
    ScenarioSpec,
    cached_oracle,
    grid_points,
    load_specs,
    oracle_decision,
    oracle_key,
    oracle_task,
    prepare,
    reference_names,
    split_count,
    tune_strategy,
)

#: The previous oracle version whose files are refreshed.
PREVIOUS_VERSION = "v2"


def refit_names(strategies: list[Any]) -> set[str]:
    """The strategies whose rows are refitted: the reference role and the convex linear ones (target-fitted)."""
    return reference_names(strategies) | set(LINEAR_GRIDS)


def refit_rows(prep: Prepared, spec: ScenarioSpec, strategies: list[Any], small: bool,
               log: Any = print) -> dict[str, Any]:
    """The oracle rows of ``refit_names`` on ``prep``'s splits (``tune_strategy``, the oracle's grid and seeds)."""
    task = oracle_task(prep, spec.seed)
    test = prep.inputs.splits.test
    rows, names = {}, refit_names(strategies)
    for s in strategies:
        if s.name not in names or task.unmet(s.needs) is not None:
            continue
        n_seeds = 1 if s.name in LINEAR_GRIDS else (2 if small else 3)
        rows[s.name] = tune_strategy(s, task, test, grid_points(s, task, small), n_seeds)
        log(f"  refit {s.name}: val {rows[s.name].val_score:.3f}, test {rows[s.name].test_score:.3f} "
            f"({rows[s.name].seconds:.1f} s)")
    return rows


def refresh_split(spec: ScenarioSpec, split: int, prep: Prepared, strategies: list[Any], small: bool,
                  root: Path, log: Any = print) -> dict[str, Any]:
    """One extra split seed: the previous version's cache file refreshed and written under the current key."""
    key, path = oracle_key(spec, split, prep, strategies, small, root)
    old = sorted(path.parent.glob(f"split-{split}-{PREVIOUS_VERSION}-*.json.gz"))
    if not old:
        raise InputError(f"{spec.name} split {split}: no {PREVIOUS_VERSION} oracle file under {path.parent}")
    with gzip.open(old[-1], "rt") as fh:
        doc = json.load(fh)
    if doc["key"]["sizes"] != prep.sizes:
        raise InputError(f"{old[-1]}: made for other splits ({doc['key']['sizes']} != {prep.sizes})")
    t0 = time.time()
    fresh = refit_rows(prep, spec, strategies, small, log)
    rows = [asdict(fresh[r["strategy"]]) if r["strategy"] in fresh else r for r in doc["oracle"]["rows"]]
    rows += [asdict(r) for n, r in fresh.items() if n not in {x["strategy"] for x in rows}]
    test_pred = {**doc["test_pred"], **{n: r.test_pred for n, r in fresh.items()}}
    y = np.asarray(doc["test_y"])
    decision = oracle_decision(rows, reference_names(strategies), test_pred, y, "accuracy", spec.seed)
    top = max(rows, key=lambda r: (r["test_score"], -r["val_score"]))
    stored_rows = [{k: v for k, v in r.items() if k != "test_pred"} for r in rows]
    oracle = {**doc["oracle"], **decision, "rows": stored_rows, "best_test_strategy": top["strategy"],
              "best_test": top["test_score"],
              "seconds": round(float(doc["oracle"]["seconds"]) + sum(float(r.seconds) for r in fresh.values())
                               - sum(float(r["seconds"]) for r in doc["oracle"]["rows"] if r["strategy"] in fresh), 1)}
    new = {"key": key, "oracle": oracle, "test_pred": test_pred, "test_y": doc["test_y"],
           "measured": doc.get("measured"),
           "refreshed": {"date": time.strftime("%Y-%m-%d %H:%M"), "from": old[-1].name, "rows": sorted(fresh),
                         "seconds": round(time.time() - t0, 1),
                         "before": {k: doc["oracle"].get(k) for k in ("verdict_code", "chosen", "test_gain")}}}
    oracle_cache.write(path, new)
    log(f"  split {split}: {doc['oracle']['verdict_code']} -> {decision['verdict_code']} (reference "
        f"{decision['reference']}, B {decision['best_transfer']}); wrote {path}")
    return new["refreshed"] | {"after": {k: decision[k] for k in ("verdict_code", "chosen", "test_gain")}}


def main(argv: list[str] | None = None) -> int:
    """Split 0 (each scenario's own seed): the current oracle, run and cached; every other split: refreshed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", required=True, help="TOML scenario file")
    parser.add_argument("--splits", type=int, default=1, metavar="N", help="as bench.quality --splits")
    parser.add_argument("--oracle-cache", default=str(oracle_cache.DEFAULT_ROOT), metavar="DIR")
    parser.add_argument("--only", nargs="*", help="only these scenario names")
    parser.add_argument("--report", metavar="FILE", help="write what changed per scenario and split (JSON)")
    args = parser.parse_args(argv)

    import torch

    from advisor.plugin.registry import build_registry

    torch.set_num_threads(1)
    specs = load_specs(args.scenarios)
    if args.only:
        specs = [s for s in specs if s.name in set(args.only)]
    registry = build_registry(plugins=[("quality", QualityPlugin(specs))])
    strategies = registry.select_strategies(None)
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    report: dict[str, Any] = {}
    for spec in specs:
        small = spec.oracle == "quick"
        try:
            prep = prepare(spec, registry, log)
        except InputError as exc:  # a scenario the harness refuses too (e.g. classes too small for its labels)
            log(f"[{spec.name}] refused: {exc}")
            report[spec.name] = {"refused": str(exc)}
            continue
        doc, hit = cached_oracle(spec, 0, prep, strategies, small, args.oracle_cache, log=log)
        report[spec.name] = {"0": {"run": not hit, "verdict_code": doc["oracle"]["verdict_code"],
                                   "reference": doc["oracle"].get("reference")}}
        for k in range(1, split_count(spec, args.splits)):
            at = replace(spec, seed=spec.seed + k)
            report[spec.name][str(k)] = refresh_split(at, k, prepare(at, registry, log), strategies, small,
                                                      Path(args.oracle_cache), log)
        if args.report:
            Path(args.report).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
