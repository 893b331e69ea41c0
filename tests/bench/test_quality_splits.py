"""The quality harness over target split seeds (``--splits``), its oracle cache and its out-of-sample advice."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from bench.quality import (
    QualityPlugin,
    ScenarioResult,
    advice_model_env,
    cached_oracle,
    count_fits,
    load_specs,
    lodo_advice_model,
    prepare,
    split_count,
    summarize,
)

CLASSES = ("a", "b", "c")


def _npz(path: Path, n_per_class: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n_per_class).astype(np.int64)
    X = (rng.normal(size=(len(y), 6)) + 3 * np.eye(6)[y]).astype(np.float32)
    np.savez(path, X=X, y=y, classes=np.array(CLASSES))
    return str(path)


def _toml(tmp_path: Path, extra: str = "") -> Path:
    src = _npz(tmp_path / "src.npz", 30, seed=1)
    tgt = _npz(tmp_path / "tgt.npz", 12, seed=2)
    f = tmp_path / "s.toml"
    f.write_text(f'[[scenario]]\nname = "toy"\nsource = "{src}"\ntarget = "{tgt}"\nlabels_per_class = 3\n'
                 f'model = "mlp"\noracle = "quick"\n{extra}')
    return f


def test_split_count_rule(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[[scenario]]\ndemo = "digits-shift"\n\n'
                 '[[scenario]]\nname = "few"\nsource = "a"\ntarget = "b"\nlabels_per_class = 3\n\n'
                 '[[scenario]]\nname = "many"\nsource = "a"\ntarget = "b"\nlabels_per_class = 10\n\n'
                 '[[scenario]]\nname = "own"\nsource = "a"\ntarget = "b"\nlabels_per_class = 10\nsplits = 2\n')
    assert [split_count(s, 3) for s in load_specs(f)] == [3, 3, 1, 2]
    assert [split_count(s, 1) for s in load_specs(f)] == [1, 1, 1, 2]


def test_lodo_advice_model_drops_the_target_domain(tmp_path: Path) -> None:
    from advisor.advice.learned import SHIPPED_MODEL, USER_MODEL_ENV, active_model, domains, load_file

    _, shipped = load_file(SHIPPED_MODEL)
    f = tmp_path / "s.toml"
    f.write_text('[[scenario]]\nname = "office-amazon-dslr-3"\nsource = "x/amazon.npz"\ntarget = "x/dslr.npz"\n\n'
                 '[[scenario]]\ndemo = "digits-shift"\n')
    office, demo = load_specs(f)
    path, info = lodo_advice_model(office, tmp_path)
    _, kept = load_file(path)
    assert info["fit"] == "leave-one-dataset-out" and info["dropped_domain"] == "dslr"
    assert info["records"] == len(kept) and info["dropped_records"] > 0
    assert len(kept) + info["dropped_records"] == len(shipped)
    assert all("dslr" not in domains(r) for r in kept)
    assert any("dslr" in domains(r) for r in shipped)
    _, info = lodo_advice_model(demo, tmp_path)
    digits = sum("sklearn-digits" in domains(r) for r in shipped)  # 3 scenarios x their target splits
    assert info["dropped_domain"] == "sklearn-digits" and info["dropped_records"] == digits >= 3
    before = os.environ.get(USER_MODEL_ENV)
    with advice_model_env(path):
        assert os.environ[USER_MODEL_ENV] == str(path)
        assert active_model().origin == load_file(path)[0].origin
    assert os.environ.get(USER_MODEL_ENV) == before


def test_oracle_cache_is_written_once_and_read_without_training(tmp_path: Path) -> None:
    from advisor.plugin.registry import build_registry

    specs = load_specs(_toml(tmp_path))
    reg = build_registry(load_entry_points=True, plugins=[("quality", QualityPlugin(specs))])
    prep = prepare(specs[0], reg, log=lambda m: None)
    strategies = [reg.strategy("target_only"), reg.strategy("finetune")]
    root = tmp_path / "cache"
    with count_fits(strategies) as counts:
        doc, hit = cached_oracle(specs[0], 1, prep, strategies, True, root, log=lambda m: None)
    assert not hit and sum(counts.values()) > 0
    files = list(root.glob("toy/split-1-v*.json.gz"))
    assert len(files) == 1
    assert set(doc["test_pred"]) == {"target_only", "finetune"} and len(doc["test_pred"]["finetune"]) == 2
    assert len(doc["test_pred"]["finetune"][0]) == len(doc["test_y"]) == len(prep.inputs.splits.test)
    with count_fits(strategies) as counts:
        again, hit = cached_oracle(specs[0], 1, prep, strategies, True, root, log=lambda m: None)
    assert hit and sum(counts.values()) == 0 and again["oracle"] == json.loads(json.dumps(doc["oracle"]))
    with count_fits(strategies) as counts:  # another size is another key: recomputed, never read
        _, hit = cached_oracle(specs[0], 1, prep, strategies, False, root, log=lambda m: None)
    assert not hit and sum(counts.values()) > 0
    with count_fits(strategies) as counts:
        _, hit = cached_oracle(specs[0], 1, prep, strategies, False, root, refresh=True, log=lambda m: None)
    assert not hit and sum(counts.values()) > 0


def test_oracle_refresh_adds_the_cross_validated_score_and_keeps_the_rest(tmp_path: Path) -> None:
    """bench.oracle_refresh: a previous-version cache file becomes a current one. Every row gains its
    cross-validated score (3 fold fits each, nothing else trains), settings, scores and test predictions are
    kept, the split is decided again, and the harness then reads the file without training."""
    import gzip
    from dataclasses import replace

    from advisor.plugin.registry import build_registry
    from bench.oracle_refresh import PREVIOUS_VERSION, refresh_split
    from bench.quality import CV_FOLDS_ORACLE

    specs = load_specs(_toml(tmp_path))
    reg = build_registry(load_entry_points=True, plugins=[("quality", QualityPlugin(specs))])
    at = replace(specs[0], seed=1)
    prep = prepare(at, reg, log=lambda m: None)
    strategies = [reg.strategy(n) for n in ("target_only", "target_linear", "finetune")]
    root = tmp_path / "cache"
    doc, _ = cached_oracle(at, 1, prep, strategies, True, root, log=lambda m: None)
    assert all(r["cv_score"] is not None for r in doc["oracle"]["rows"])  # a fresh oracle has them
    current = next(root.glob("toy/split-1-v*.json.gz"))
    old = current.with_name(f"split-1-{PREVIOUS_VERSION}-00000000.json.gz")
    with gzip.open(old, "wt") as fh:  # a previous-version file: no cross-validated scores, a stale verdict
        stale = json.loads(json.dumps(doc))
        stale["oracle"]["rows"] = [{k: v for k, v in r.items() if k != "cv_score"} for r in stale["oracle"]["rows"]]
        stale["oracle"]["verdict_code"] = "stale"
        json.dump(stale, fh)
    current.unlink()
    with count_fits(strategies) as counts:
        info = refresh_split(at, 1, prep, strategies, True, root, log=lambda m: None)
    assert all(counts[s.name] == CV_FOLDS_ORACLE for s in strategies)
    assert info["before"]["verdict_code"] == "stale" and info["after"]["verdict_code"] == doc["oracle"]["verdict_code"]
    with count_fits(strategies) as counts:
        new, hit = cached_oracle(at, 1, prep, strategies, True, root, log=lambda m: None)
    assert hit and sum(counts.values()) == 0 and new["refreshed"]["from"] == old.name

    def rows(d: dict) -> dict:
        skip = ("seconds", "cv_seconds")
        return {r["strategy"]: {k: v for k, v in r.items() if k not in skip} for r in d["oracle"]["rows"]}

    assert rows(new) == rows(json.loads(json.dumps(doc)))  # the same folds and seeds: the same scores
    assert new["test_pred"] == json.loads(json.dumps(doc["test_pred"]))


def _row(split: int, a_code: str, o_code: str, regret: float, fixed: dict[str, float]) -> dict:
    return {"split": split, "seed": split, "oracle_source": "cache", "regret_vs_best": regret,
            "advisor": {"strategy": "finetune", "verdict_code": a_code, "test_score": 0.6},
            "oracle": {"verdict_code": o_code, "best_test_strategy": "finetune", "best_test": 0.62},
            "verdict_agrees": a_code == o_code,
            "opposite_sign": {a_code, o_code} == {"transfer_helps", "transfer_hurts"},
            "advisor_at_or_above_floor": True, "fixed_policy_regret": fixed,
            "compute": {"ratio_seconds": 0.1}}


def test_summary_over_splits() -> None:
    def res(name: str, rows: list[dict]) -> ScenarioResult:
        return ScenarioResult(name, "p", {}, {"test_score": 0.6}, {"verdict_code": "x"}, {"best": 0.5}, 1.0, 1.0,
                              True, None, None, None, 0.1, True, 0.0, splits=rows)

    stable = res("a", [_row(0, "no_gain", "no_gain", 1.0, {"finetune": 0.0, "l2sp": 2.0}),
                       _row(1, "transfer_helps", "no_gain", 3.0, {"finetune": 1.0, "l2sp": 0.0})])
    unstable = res("b", [_row(0, "transfer_helps", "transfer_hurts", 0.0, {"finetune": 4.0}),
                         _row(1, "transfer_helps", "transfer_helps", 2.0, {"finetune": 0.0})])
    s = summarize([stable, unstable])["splits"]
    assert s["rows"] == 4 and s["mean_regret_vs_best_points"] == 1.5 and s["sd_regret_vs_best_points"] > 0
    assert s["verdict_agreement_where_oracle_stable"]["k"] == 1 and s["verdict_agreement_where_oracle_stable"]["n"] == 2
    assert s["oracle_stable_scenarios"] == {**s["oracle_stable_scenarios"], "k": 1, "n": 2}
    assert s["opposite_sign_verdicts"] == 1
    assert s["fixed_policy_regret"]["finetune"] == {"mean_regret_points": 1.25, "n": 4}
    assert s["best_fixed_policy"] == "finetune"  # l2sp applies to 2 of 4 rows only


def _stored_oracle(sizes: dict[str, int]) -> dict:
    """A stored per-scenario result as the pinned harness wrote it (the fields ``--reuse-oracle`` reads)."""
    rows = [{"strategy": s, "family": "f", "params": {}, "val_score": v, "test_score": t, "points": 3, "fits": 12,
             "seconds": 2.0} for s, v, t in (("target_only", 0.5, 0.6), ("finetune", 0.6, 0.7))]
    return {"name": "toy", "protocol": "p", "sizes": sizes, "error": None,
            "floors": {"target_only": 0.62, "source_only": 0.4, "pooled": 0.6, "best": 0.62},
            "oracle": {"rows": rows, "verdict_code": "transfer_helps", "chosen": "finetune", "chosen_test": 0.7,
                       "test_gain": 0.1, "test_gain_ci": [0.05, 0.15], "best_test_strategy": "finetune",
                       "best_test": 0.7, "seconds": 10.0, "skipped": {}}}


@pytest.mark.slow
def test_two_splits_end_to_end_and_rerun_reads_the_cache(tmp_path: Path) -> None:
    """--splits 2 on a tiny file scenario (quick oracle, 1 advisor trial per strategy): split 0 against a
    stored (pinned) oracle, split 1 through the cache; two split rows, the summary's split figures, the LODO
    advice recorded; a rerun reads split 1's oracle from the cache; --from-results rebuilds the summary."""
    from bench.quality import main

    toml = _toml(tmp_path)
    stored = tmp_path / "stored"
    stored.mkdir()
    (stored / "toy.json").write_text(json.dumps(_stored_oracle({"source": 90, "train": 9, "val": 12, "test": 15})))
    out, cache = tmp_path / "out", tmp_path / "oracle"
    argv = ["--scenarios", str(toml), "--splits", "2", "--advisor-trials", "1", "--reuse-oracle", str(stored),
            "--oracle-cache", str(cache)]
    assert main([*argv, "--out", str(out)]) == 0
    res = json.loads((out / "toy.json").read_text())
    assert [r["split"] for r in res["splits"]] == [0, 1] and [r["seed"] for r in res["splits"]] == [0, 1]
    assert [r["oracle_source"] for r in res["splits"]] == ["cache; compute: pinned", "cache: computed now"]
    assert res["oracle"]["pinned"]["verdict_code"] == "transfer_helps"  # the stored one, kept for the record
    assert res["splits"][0]["oracle"]["verdict_code"] == res["pinned"]["oracle_verdict_code"]  # the current one
    assert res["splits"][0]["regret_vs_best"] == res["pinned"]["regret_vs_best"]
    for key in ("advisor", "oracle", "floors", "regret_vs_best", "fixed_policy_regret", "compute"):
        assert key in res["splits"][1]
    scores = [r["advisor"]["test_score"] for r in res["splits"]]
    assert res["advisor"]["test_score"] == pytest.approx(np.mean(scores), abs=1e-4)
    codes = {r["oracle"]["verdict_code"] for r in res["splits"]}
    assert res["oracle"]["verdict_code"] == (codes.pop() if len(codes) == 1 else "unstable")
    assert res["advice_model"]["fit"] == "leave-one-dataset-out" and res["advice_model"]["dropped_domain"] == "tgt"
    summary = json.loads((out / "quality.json").read_text())["summary"]["splits"]
    assert summary["rows"] == 2 and {"mean_regret_vs_best_points", "sd_regret_vs_best_points",
                                     "verdict_agreement_where_oracle_stable", "opposite_sign_verdicts",
                                     "fixed_policy_regret", "best_fixed_policy"} <= set(summary)
    assert len(list(cache.glob("toy/split-1-*.json.gz"))) == 1
    assert main([*argv, "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "toy.json").read_text())
    assert again["splits"][1]["oracle_source"] == "cache"
    assert again["splits"][1]["oracle"] == res["splits"][1]["oracle"]
    assert main([*argv, "--out", str(out), "--from-results"]) == 0
    rebuilt = json.loads((out / "quality.json").read_text())["summary"]["splits"]
    assert rebuilt == summary
    # --rescore against the same cached oracles grades the stored results to the same figures, training nothing
    assert main(["--scenarios", str(toml), "--splits", "2", "--oracle-cache", str(cache), "--rescore", str(out),
                 "--out", str(tmp_path / "rescored")]) == 0
    regraded = json.loads((tmp_path / "rescored" / "toy.json").read_text())
    assert {r["oracle_source"] for r in regraded["splits"]} == {"cache (rescored)"}
    assert [r["compute_source"] for r in regraded["splits"]] == [r["oracle_source"] for r in res["splits"]]
    for old, new in zip(res["splits"], regraded["splits"], strict=True):
        for key in ("advisor", "oracle", "floors", "regret_vs_best", "fixed_policy_regret", "verdict_agrees",
                    "compute"):
            assert new[key] == old[key], key
    assert regraded["pinned"] == res["pinned"] and regraded["advisor"]["test_score"] == res["advisor"]["test_score"]
    rescored = json.loads((tmp_path / "rescored" / "quality.json").read_text())
    assert rescored["summary"]["splits"] == summary and rescored["rescored_from"] == str(out)
