"""Fit the shipped quick-advice model (``advisor/advice/model.json``) on the quality harness's oracle outcomes.

``python -m bench.fit_advice [--evidence] [--scenarios FILE ...] [--out FILE] [--oracle-cache DIR]
[--record-in FILE]`` (run from the repository root).

Two steps, so the fit is reproducible without recomputing anything:

1. ``--evidence``: for every harness scenario (``bench/scenarios/*.toml``) compute the quick advice's evidence
   only, through the public API (``recommend(InputRequest(demo=NAME), RecommendOptions(trials=0, ...))``, the
   file scenarios registered by ``bench.quality``'s plugin, no learned model active), plus the target's sizes and
   the hand-set rule's scores and ranking, and cache them in ``bench/results/advice_evidence.json``. Cheap: no
   strategy trains (the source models come from the pretraining cache).
2. Always: join that evidence with the oracle outcomes stored per scenario (``bench/results/{shared,builtin}/
   NAME.json``: each strategy's oracle-tuned validation and test score; and the harness's cached oracles of extra
   target splits, ``bench/results/oracle/``, one more record per split), make one meta-store record per scenario
   and split
   (its ``outcome`` is the oracle's *test* score, never the advisor's raced scores, which would reinforce the
   prior), fit ``advisor.advice.learned`` on them and write ``advisor/advice/model.json`` (the model and the
   records it was fitted on, so ``advisor advice evaluate`` can redo the leave-one-dataset-out figures from an
   installed wheel). It prints those figures.

Domains: a file scenario's domains are its files' stems (``amazon``, ``dslr``, ``mnist``, ...); the three built-in
scenarios all cut their source and target from the same scikit-learn digits, so their domains are all
``sklearn-digits`` (leaving one out drops all three: nothing learned from the same images scores them).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from advisor.errors import InputError

from . import oracle_cache

SCENARIO_FILES = ("bench/scenarios/builtin.toml", "bench/scenarios/shared_data.toml")
RESULT_DIRS = ("bench/results/builtin", "bench/results/shared")
EVIDENCE_FILE = "bench/results/advice_evidence.json"
MODEL_FILE = "advisor/advice/model.json"
DEMO_DOMAIN = "sklearn-digits"
HARNESS_SUMMARY = "bench/results/shared/quality.json"


def _domains(spec: Any) -> tuple[str, str]:
    if spec.demo is not None:
        return DEMO_DOMAIN, DEMO_DOMAIN
    return Path(spec.source).stem, Path(spec.target).stem


def cached_splits(root: str | Path = oracle_cache.DEFAULT_ROOT) -> dict[str, dict[int, dict[str, Any]]]:
    """The extra target splits' oracles the harness cached (``bench.oracle_cache``), newest version per split:
    scenario -> split -> the cached document's ``oracle``."""
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for path in sorted(Path(root).glob(f"*/split-*-v{oracle_cache.ORACLE_VERSION}-*.json.gz")):
        with gzip.open(path, "rt") as fh:
            doc = json.load(fh)
        split = int(path.name.split("-")[1])
        if doc.get("oracle", {}).get("rows"):
            out.setdefault(path.parent.name, {})[split] = doc["oracle"]
    return out


def collect_evidence(scenario_files: list[str], log: Any = print,
                     splits: dict[str, list[int]] | None = None) -> list[dict[str, Any]]:
    """The quick advice's evidence, sizes, domains and prior ranking of every scenario (no training), on its own
    split and on the extra split offsets ``splits[name]`` (the split seed is the scenario's seed plus it)."""
    import torch

    from advisor.advice.learned import NO_MODEL
    from advisor.models.inputs import InputRequest, resolve_inputs
    from advisor.pipeline import RecommendOptions, recommend
    from advisor.plugin.registry import build_registry
    from advisor.runs.metastore import sizes_of

    from .quality import QualityPlugin, advice_model_env, load_specs

    torch.set_num_threads(1)
    specs = [s for f in scenario_files for s in load_specs(f)]
    registry = build_registry(plugins=[("quality", QualityPlugin([s for s in specs if s.demo is None]))])
    out = []
    # the hand-set rule alone ranks: the records' prior is what the learned model is measured against
    with tempfile.TemporaryDirectory() as tmp, advice_model_env(NO_MODEL):
        for spec, split in [(s, k) for s in specs for k in sorted({0, *(splits or {}).get(s.name, [])})]:
            request = InputRequest(demo=spec.advisor_name, seed=spec.seed + split)
            try:
                inputs = resolve_inputs(request, registry)
            except InputError as exc:
                log(f"[{spec.name}] refused: {exc}")
                continue
            options = RecommendOptions(trials=0, run_dir=str(Path(tmp) / f"{spec.name}-{split}"), threads=1,
                                       meta_store="none")
            doc = recommend(request, options, registry=registry)
            src, tgt = _domains(spec)
            out.append({
                "scenario": spec.name, "split": split, "evidence": doc["advice"]["evidence"],
                "prior_ranking": [r["strategy"] for r in doc["advice"]["ranking"]],
                "hand_set_scores": {r["strategy"]: r["hand_set_score"] for r in doc["advice"]["ranking"]},
                "sizes": sizes_of(inputs), "data_kind": inputs.splits.train.kind,
                "domains": {"source": {"name": src, "fingerprint": inputs.fingerprints().get("source", "")},
                            "target": {"name": tgt, "fingerprint": _target_fp(inputs)}},
            })
            log(f"[{spec.name} split {split}] evidence {doc['advice']['evidence']}")
    return out


def _target_fp(inputs: Any) -> str:
    fps = inputs.fingerprints()
    return "+".join(fps[k][:8] for k in ("target_train", "target_val", "target_test"))


def harness_records(evidence: list[dict[str, Any]], result_dirs: tuple[str, ...] = RESULT_DIRS,
                    splits: dict[str, dict[int, dict[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """One meta-store record per scenario and split with an oracle: evidence joined with the oracle's outcomes
    (split 0: the stored pinned oracle in ``result_dirs``; others: ``splits``, the harness's oracle cache)."""
    from advisor.runs.metastore import RECORD_SCHEMA

    oracle: dict[tuple[str, int], dict[str, Any]] = {}
    for d in result_dirs:
        for f in sorted(Path(d).glob("*.json")):
            if f.name == "quality.json":
                continue
            res = json.loads(f.read_text())
            if res.get("error") is None and res.get("oracle", {}).get("rows"):
                oracle[(res["name"], 0)] = res["oracle"]
    for name, by_split in (splits or {}).items():
        for k, o in by_split.items():
            oracle[(name, k)] = o
    records = []
    for ev in evidence:
        split = int(ev.get("split", 0))
        o = oracle.get((ev["scenario"], split))
        if o is None:
            continue
        records.append({
            "schema": RECORD_SCHEMA, "id": f"harness:{ev['scenario']}" + (f":split{split}" if split else ""),
            "origin": "harness-oracle", "split": split,
            "run": ev["scenario"], "score": "accuracy", "data_kind": ev["data_kind"], "evidence": ev["evidence"],
            "sizes": ev["sizes"], "domains": ev["domains"], "prior_ranking": ev["prior_ranking"],
            "hand_set_scores": ev.get("hand_set_scores", {}),
            "strategies": {r["strategy"]: {"family": r["family"], "val_score": r["val_score"],
                                           "test_score": r["test_score"], "params": r["params"]}
                           for r in o["rows"]},
            "verdict": {"strategy": o["chosen"], "verdict_code": o["verdict_code"], "test_score": o["chosen_test"],
                        "test_gain": o["test_gain"], "test_gain_ci": o["test_gain_ci"]},
        })
    return records


def main(argv: list[str] | None = None) -> int:
    """Compute (``--evidence``) or read the cached evidence, fit, write the model, print the LODO figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidence", action="store_true", help=f"recompute {EVIDENCE_FILE} first")
    parser.add_argument("--scenarios", nargs="*", default=list(SCENARIO_FILES), help="TOML scenario files")
    parser.add_argument("--out", default=MODEL_FILE, help="where to write the model")
    parser.add_argument("--oracle-cache", default=str(oracle_cache.DEFAULT_ROOT), metavar="DIR",
                        help="the harness's cached oracles of extra target splits, one more record each "
                             "('' for none)")
    parser.add_argument("--record-in", default=HARNESS_SUMMARY, metavar="FILE",
                        help="the harness summary that gets the LODO figures (default: %(default)s; '' for none)")
    args = parser.parse_args(argv)
    splits = cached_splits(args.oracle_cache) if args.oracle_cache else {}
    if args.evidence:
        ev = collect_evidence(args.scenarios, log=lambda m: print(m, file=sys.stderr, flush=True),
                              splits={name: sorted(by) for name, by in splits.items()})
        Path(EVIDENCE_FILE).write_text(json.dumps({"scenarios_files": args.scenarios, "evidence": ev}, indent=1))
    cached = json.loads(Path(EVIDENCE_FILE).read_text())["evidence"]
    from advisor.advice.learned import evaluate_lodo, fit, format_evaluation

    records = harness_records(cached, splits=splits)
    model = fit(records, origin=f"shipped model fitted on {len(records)} harness scenarios' oracle outcomes")
    model.save(args.out, records=records)
    print(f"wrote {args.out}: {len(records)} records, strategies {', '.join(sorted(model.strategies))}")
    evaluation = evaluate_lodo(records)
    print(format_evaluation(evaluation))
    if args.record_in:
        record_in_harness_summary(evaluation.summary, args.record_in)
    return 0


def record_in_harness_summary(summary: dict[str, Any], path: str = HARNESS_SUMMARY) -> None:
    """Write the LODO figures into the shared-data harness summary, beside the harness's own figures."""
    doc = json.loads(Path(path).read_text())
    for key in ("advice_tau_lodo", "advice_top_regret_lodo_points"):
        doc["summary"][key] = summary[key]
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
