"""Bring the quality harness's oracle cache to the current oracle version without rerunning what did not change.

``python -m bench.oracle_refresh --scenarios FILE [--splits N] [--oracle-cache DIR] [--only NAME ...]
[--report FILE]`` (run from the repository root).

Why: the oracle is cached (``bench/results/oracle/``) so that a harness rerun measures the advisor, not the
oracle again. Version 4 changed how the oracle picks B and the reference, not how it tunes: each is now the best
of its group by its tuned setting's 3-fold cross-validated score on train+val (``bench.quality.oracle_crossval``,
``oracle_decision``), where version 3 picked by the validation score (100 rows, at the search's size) although
both are graded after the retrain on train+val.

For every split seed of every scenario (each scenario's own seed included) the version-3 file
(``split-<k>-v3-*.json.gz``) is read; every row keeps its setting, scores and test predictions and gains its
cross-validated score (3 fold fits; ``cv_seconds``, kept apart from the grid's ``fits`` and ``seconds``, which
the pinned compute denominator reads); the split is decided again and written under the key the harness computes
(``bench.quality.oracle_key``), so ``bench.quality --splits N`` reads it without training. A split without a
version-3 file is run in full (``bench.quality.cached_oracle``). The version-2 -> 3 refresh (refitting the
target-fitted rows) is in the history of this file (commit be8c4a7).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from advisor.errors import InputError

from . import oracle_cache
from .quality import (
    Prepared,
    QualityPlugin,
    ScenarioSpec,
    cached_oracle,
    load_specs,
    oracle_crossval,
    oracle_decision,
    oracle_key,
    oracle_task,
    prepare,
    reference_names,
    split_count,
)

#: The previous oracle version whose files are refreshed.
PREVIOUS_VERSION = "v3"


def refresh_split(spec: ScenarioSpec, split: int, prep: Prepared, strategies: list[Any], small: bool,
                  root: Path, log: Any = print) -> dict[str, Any]:
    """One split seed: the previous version's cache file given every row's cross-validated score, decided again
    and written under the current key (run in full when there is no previous file)."""
    key, path = oracle_key(spec, split, prep, strategies, small, root)
    old = sorted(path.parent.glob(f"split-{split}-{PREVIOUS_VERSION}-*.json.gz"))
    if not old:
        doc, hit = cached_oracle(spec, split, prep, strategies, small, root, log=log)
        return {"run": not hit, "after": {k: doc["oracle"][k] for k in ("verdict_code", "chosen", "test_gain")}}
    with gzip.open(old[-1], "rt") as fh:
        doc = json.load(fh)
    if doc["key"]["sizes"] != prep.sizes:
        raise InputError(f"{old[-1]}: made for other splits ({doc['key']['sizes']} != {prep.sizes})")
    t0 = time.time()
    task = oracle_task(prep, spec.seed)
    by_name = {s.name: s for s in strategies}
    rows = []
    for r in doc["oracle"]["rows"]:
        t1 = time.time()
        cv = oracle_crossval(by_name[r["strategy"]], task, r["params"])
        rows.append({**r, "cv_score": cv, "cv_seconds": round(time.time() - t1, 1)})
        log(f"  {r['strategy']}: val {r['val_score']:.3f}, cross-validated {cv:.3f}, test {r['test_score']:.3f}")
    y = np.asarray(doc["test_y"])
    decision = oracle_decision(rows, reference_names(strategies), doc["test_pred"], y, "accuracy", spec.seed)
    spent = round(time.time() - t0, 1)
    oracle = {**doc["oracle"], **decision, "rows": rows,
              "seconds": round(float(doc["oracle"]["seconds"]) + spent, 1)}
    new = {"key": key, "oracle": oracle, "test_pred": doc["test_pred"], "test_y": doc["test_y"],
           "measured": doc.get("measured"),
           "refreshed": {"date": time.strftime("%Y-%m-%d %H:%M"), "from": old[-1].name, "added": "cv_score",
                         "seconds": spent,
                         "before": {k: doc["oracle"].get(k) for k in ("verdict_code", "reference", "best_transfer",
                                                                      "chosen", "test_gain")}}}
    oracle_cache.write(path, new)
    log(f"  split {split}: {doc['oracle']['verdict_code']} -> {decision['verdict_code']} (reference "
        f"{doc['oracle'].get('reference')} -> {decision['reference']}, B {doc['oracle']['best_transfer']} -> "
        f"{decision['best_transfer']}); wrote {path}")
    return new["refreshed"] | {"after": {k: decision[k] for k in ("verdict_code", "reference", "best_transfer",
                                                                   "chosen", "test_gain")}}


def main(argv: list[str] | None = None) -> int:
    """Every split seed of every scenario refreshed (``refresh_split``)."""
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
        report[spec.name] = {"0": refresh_split(spec, 0, prep, strategies, small, Path(args.oracle_cache), log)}
        for k in range(1, split_count(spec, args.splits)):
            at = replace(spec, seed=spec.seed + k)
            report[spec.name][str(k)] = refresh_split(at, k, prepare(at, registry, log), strategies, small,
                                                      Path(args.oracle_cache), log)
        if args.report:
            Path(args.report).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
