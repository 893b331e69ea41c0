"""Fast tests of the quality harness's logic on tiny synthetic data (real data: skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from advisor.data.domain import Domain
from advisor.errors import InputError
from bench.floors import logistic_floors, one_nn_accuracy
from bench.quality import (
    FileScenario,
    QualityPlugin,
    ScenarioResult,
    fixed_splits,
    freeze_grid,
    grid_points,
    kendall_tau,
    l1_zscore,
    load_specs,
    markdown,
    summarize,
    verdict,
)

CLASSES = ("a", "b", "c")
SHARED = next((p for p in (Path("/work/shared/data"), Path("../shared/data")) if p.exists()), None)


def _domain(n_per_class: list[int], dim: int = 6, seed: int = 0, shift: float = 0.0) -> Domain:
    rng = np.random.default_rng(seed)
    y = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)]).astype(np.int64)
    X = (rng.normal(size=(len(y), dim)) + 3 * np.eye(dim)[y] + shift).astype(np.float32)
    return Domain("t", X, y, CLASSES, "features")


def _npz(path: Path, d: Domain, counts: bool = False) -> str:
    X = np.abs(d.X * 10).astype(np.uint8) if counts else d.X
    np.savez(path, X=X, y=d.y, classes=np.array(d.classes))
    return str(path)


def test_load_specs_demo_and_file(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[[scenario]]\ndemo = "digits-shift"\n\n[[scenario]]\nname = "x"\nsource = "a.npz"\n'
                 'target = "b.npz"\nlabels_per_class = 3\npreprocess = "l1-zscore"\n')
    demo, file = load_specs(f)
    assert demo.name == demo.advisor_name == "digits-shift"
    assert (file.name, file.labels_per_class, file.preprocess, file.demo) == ("x", 3, "l1-zscore", None)


@pytest.mark.parametrize("body, message", [
    ('[[scenario]]\nname = "x"\nsource = "a.npz"\n', "needs demo"),
    ('[[scenario]]\ndemo = "d"\ncolour = 1\n', "unknown key"),
    ('[[scenario]]\nname = "x"\nsource = "a"\ntarget = "b"\npreprocess = "pca"\n', "preprocess"),
    ("", r"no \[\[scenario\]\]"),
])
def test_load_specs_refuses(tmp_path: Path, body: str, message: str) -> None:
    f = tmp_path / "s.toml"
    f.write_text(body)
    with pytest.raises(InputError, match=message):
        load_specs(f)


def test_fixed_splits_rule() -> None:
    sp = fixed_splits(_domain([40, 12, 7]), labels_per_class=2, seed=0)
    assert sp.train.class_counts() == {"a": 2, "b": 2, "c": 2}
    assert sp.val.class_counts() == {"a": 10, "b": 5, "c": 2}  # min(10, (n - L) // 2)
    assert sp.test.class_counts() == {"a": 28, "b": 5, "c": 3}
    idx = [set(map(bytes, s.X)) for s in (sp.train, sp.val, sp.test)]
    assert not (idx[0] & idx[1] or idx[0] & idx[2] or idx[1] & idx[2])
    again = fixed_splits(_domain([40, 12, 7]), labels_per_class=2, seed=0)
    assert np.array_equal(again.test.X, sp.test.X)


def test_fixed_splits_refuses_small_class_by_name() -> None:
    with pytest.raises(InputError, match=r"'c' has only 7.*at least 15"):
        fixed_splits(_domain([40, 20, 7]), labels_per_class=10)


def test_l1_zscore() -> None:
    X = np.random.default_rng(0).integers(0, 20, size=(50, 8)).astype(np.float32)
    Z = l1_zscore(X)
    assert np.allclose(Z.mean(0), 0, atol=1e-5) and np.allclose(Z.std(0), 1, atol=1e-4)
    R = X / X.sum(1, keepdims=True)
    assert np.allclose(Z, (R - R.mean(0)) / R.std(0), atol=1e-4)


def test_kendall_tau_and_freeze_grid() -> None:
    scores = {"a": 0.9, "b": 0.8, "c": 0.7}
    assert kendall_tau(["a", "b", "c"], scores) == 1.0
    assert kendall_tau(["c", "b", "a"], scores) == -1.0
    assert kendall_tau(["a", "zzz"], scores) is None
    assert freeze_grid("l2sp", 3, quick=False) == [0, 1, 2]
    assert freeze_grid("l2sp", 3, quick=True) == [0, 1]
    assert freeze_grid("linear_probe", 3, quick=False) == [3]
    assert freeze_grid("target_only", 3, quick=False) == [0]


def test_grid_points_cover_lr_knob_and_freeze() -> None:
    from advisor.models.architectures import ModelSpec, build
    from advisor.plugin.contracts import TransferTask
    from advisor.plugin.registry import build_registry

    reg = build_registry(load_entry_points=True)
    d = _domain([6, 6, 6])
    task = TransferTask(source=d, target_train=d, target_val=d, backbone=build(ModelSpec("cnn", "images", (1, 8, 8)),
                                                                                3, seed=0))
    points = grid_points(reg.strategy("importance_weighting"), task, quick=False)
    assert len(points) == 3 * 3 * 3  # lr x target share x freeze {0, 1, 2}
    assert {p["lr"] for p in points} == {3.33e-4, 1e-3, 3e-3}
    assert {p["target_share"] for p in points} == {0.2, 0.5, 0.8} and {p["freeze"] for p in points} == {0, 1, 2}
    assert len(grid_points(reg.strategy("importance_weighting"), task, quick=True)) == 3 * 3 * 2
    only_lr = grid_points(reg.strategy("target_only"), task, quick=False)
    assert len(only_lr) == 3 and {p["freeze"] for p in only_lr} == {0}


def test_oracle_size_key(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[[scenario]]\ndemo = "digits-shift"\noracle = "quick"\n')
    assert load_specs(f)[0].oracle == "quick"
    f.write_text('[[scenario]]\ndemo = "digits-shift"\noracle = "huge"\n')
    with pytest.raises(InputError, match="oracle must be one of"):
        load_specs(f)


def test_verdict_rule() -> None:
    y = np.arange(200) % 4
    good, bad = y.copy(), (y + 1) % 4
    half = np.where(np.arange(200) < 100, y, (y + 1) % 4)
    assert verdict("accuracy", y, good, half, 0, 0.9, 0.5)[:2] == ("transfer_helps", True)
    assert verdict("accuracy", y, bad, half, 0, 0.9, 0.5)[:2] == ("transfer_hurts", False)
    code, pick_b, *_ = verdict("accuracy", y, half, half, 0, 0.4, 0.5)
    assert (code, pick_b) == ("no_gain", False)


def test_oracle_decision_takes_the_best_reference_role_row() -> None:
    from bench.quality import oracle_decision

    y = np.arange(200) % 4
    good, bad = y.copy(), (y + 1) % 4
    half = np.where(np.arange(200) < 100, y, (y + 1) % 4)
    rows = [{"strategy": "target_only", "val_score": 0.4, "test_score": 0.5},
            {"strategy": "target_linear", "val_score": 0.6, "test_score": 1.0},
            {"strategy": "finetune", "val_score": 0.7, "test_score": 0.5},
            {"strategy": "l2sp", "val_score": 0.5, "test_score": 0.0}]
    preds = {"target_only": [bad], "target_linear": [good], "finetune": [half], "l2sp": [bad]}
    d = oracle_decision(rows, {"target_only", "target_linear"}, preds, y, "accuracy", 0)
    assert (d["reference"], d["best_transfer"]) == ("target_linear", "finetune")
    assert d["verdict_code"] == "transfer_hurts" and d["chosen"] == "target_linear" and d["chosen_test"] == 1.0
    assert d["test_gain"] == -0.5 and d["test_gain_ci"][1] < 0
    rows[0]["val_score"] = 0.65  # target_only now leads its role: against it, finetune helps
    d = oracle_decision(rows, {"target_only", "target_linear"}, preds, y, "accuracy", 0)
    assert (d["reference"], d["verdict_code"], d["chosen"]) == ("target_only", "transfer_helps", "finetune")


def test_oracle_decision_picks_by_cross_validation_before_validation() -> None:
    """Version 4: each group's best by its cross-validated score on train+val; validation breaks ties and ranks
    rows without one after those with one."""
    from bench.quality import oracle_decision

    y = np.arange(200) % 4
    good, bad = y.copy(), (y + 1) % 4
    rows = [{"strategy": "target_only", "val_score": 0.9, "cv_score": 0.3, "test_score": 0.0},
            {"strategy": "target_linear", "val_score": 0.5, "cv_score": 0.6, "test_score": 1.0},
            {"strategy": "finetune", "val_score": 0.9, "cv_score": 0.4, "test_score": 0.0},
            {"strategy": "l2sp", "val_score": 0.5, "cv_score": 0.7, "test_score": 1.0},
            {"strategy": "linear_probe", "val_score": 0.99, "test_score": 0.0}]  # no cross-validated score
    preds = {"target_only": [bad], "target_linear": [good], "finetune": [bad], "l2sp": [good],
             "linear_probe": [bad]}
    refs = {"target_only", "target_linear"}
    d = oracle_decision(rows, refs, preds, y, "accuracy", 0)
    assert (d["reference"], d["best_transfer"], d["verdict_code"]) == ("target_linear", "l2sp", "no_gain")
    rows[2]["cv_score"] = 0.7  # a tie on cross-validation: validation decides
    assert oracle_decision(rows, refs, preds, y, "accuracy", 0)["best_transfer"] == "finetune"
    for r in rows:
        r.pop("cv_score", None)  # a version-3 row set: validation alone, as before
    d = oracle_decision(rows, refs, preds, y, "accuracy", 0)
    assert (d["reference"], d["best_transfer"]) == ("target_only", "linear_probe")


def test_floors_on_synthetic_features() -> None:
    source = _domain([30, 30, 30], seed=1)
    splits = fixed_splits(_domain([30, 30, 30], seed=2), labels_per_class=3)
    f = logistic_floors(source, splits)
    assert f.source_only is not None and f.pooled is not None
    assert f.best() >= max(f.target_only, f.source_only, f.pooled) > 0.6
    assert one_nn_accuracy(source, _domain([10, 10, 10], seed=3)) > 0.6


def test_file_scenario_registers_and_builds(tmp_path: Path) -> None:
    from advisor.plugin.registry import build_registry

    f = tmp_path / "s.toml"
    src = _npz(tmp_path / "src.npz", _domain([30, 30, 30], seed=1), counts=True)
    tgt = _npz(tmp_path / "tgt.npz", _domain([20, 20, 20], seed=2), counts=True)
    f.write_text(f'[[scenario]]\nname = "toy"\nsource = "{src}"\ntarget = "{tgt}"\nlabels_per_class = 3\n'
                 'preprocess = "l1-zscore"\n')
    reg = build_registry(load_entry_points=False, plugins=[("quality", QualityPlugin(load_specs(f)))])
    sc = reg.scenario("toy")
    assert isinstance(sc, FileScenario)
    data = sc.build(0)
    assert data.model == "mlp" and len(data.target.train) == 9 and len(data.target.val) == 24
    assert np.allclose(data.source.X.mean(0), 0, atol=1e-4)


def test_summary_and_markdown() -> None:
    res = ScenarioResult(
        name="s", protocol="p", sizes={}, advisor={"strategy": "l2sp", "verdict_code": "no_gain",
                                                   "test_score": 0.8, "seconds": 10.0},
        oracle={"chosen": "finetune", "verdict_code": "no_gain", "chosen_test": 0.82, "seconds": 100.0},
        floors={"target_only": 0.7, "source_only": None, "pooled": 0.75, "best": 0.75}, regret=2.0,
        regret_vs_test_best=3.0, verdict_agrees=True, kendall_tau=0.5, advice_top="l2sp",
        advice_top_regret=1.0, compute_ratio=0.1, advisor_at_or_above_floor=True, prepare_s=1.0)
    failed = ScenarioResult("bad", "", {}, {}, {}, {}, None, None, None, None, None, None, None, None, 0.0,
                            error="class 'mug' has only 8")
    s = summarize([res, failed])
    got = (s["ran"], s["mean_regret_points"], s["verdict_agreement"], s["at_or_above_best_floor"])
    assert got == (1, 2.0, 1.0, 1.0)
    assert s["oracle_at_or_above_best_floor"] == 1.0  # 0.82 >= 0.75
    md = markdown([res, failed], s, quick=True)
    assert "| s |" in md and "mug" in md and "≤ 1.5" in md


@pytest.mark.skipif(SHARED is None, reason="../shared/data is absent")
def test_real_data_one_nn_and_dslr_refusal() -> None:
    from bench.quality import load_file_domain

    d = f"{SHARED}/office_caltech_surf"
    c, a = (load_file_domain(f"{d}/{n}.npz", n, "l1-zscore") for n in ("caltech", "amazon"))
    assert round(100 * one_nn_accuracy(c, a), 1) == 23.7  # the published 1NN row, C -> A
    with pytest.raises(InputError, match="'mug' has only 8"):
        fixed_splits(load_file_domain(f"{d}/dslr.npz", "dslr", "l1-zscore"), labels_per_class=10)


def _stored_oracle(name: str, sizes: dict[str, int]) -> dict:
    """A stored per-scenario result as `bench.quality` wrote it at the pinned commit (the fields reused)."""
    rows = [{"strategy": s, "family": "f", "params": {}, "val_score": v, "test_score": t, "points": 3, "fits": f,
             "seconds": sec} for s, v, t, f, sec in (("target_only", 0.5, 0.6, 12, 2.0),
                                                   ("finetune", 0.6, 0.7, 21, 3.0), ("l2sp", 0.55, 0.65, 57, 5.0))]
    return {"name": name, "protocol": "p", "sizes": sizes, "error": None,
            "floors": {"target_only": 0.62, "source_only": 0.4, "pooled": 0.6, "best": 0.62},
            "oracle": {"rows": rows, "verdict_code": "transfer_helps", "chosen": "finetune", "chosen_test": 0.7,
                       "best_test_strategy": "finetune", "best_test": 0.7, "seconds": 10.0, "skipped": {}}}


def test_pinned_figures_rules() -> None:
    from bench.quality import floor_margin, pinned_figures, summarize_pinned

    stored = _stored_oracle("s", {})
    added = [{"strategy": "target_linear", "test_score": 0.72, "val_score": 0.5, "fits": 6, "seconds": 0.5},
             {"strategy": "pooled_linear", "test_score": 0.66, "val_score": 0.5, "fits": 16, "seconds": 1.5}]
    assert floor_margin(67) == pytest.approx(1 / 67) and floor_margin(1000) == 0.005
    advisor = {"test_score": 0.615, "verdict_code": "transfer_hurts", "seconds": 3.0, "fits": {"total": 28},
               "stopped": {"l2sp": {"after_trials": 3, "reason": "trails"}}}
    p = pinned_figures(advisor, stored, added, n_test=100)
    assert p["oracle_seconds"]["pinned"] == 12.0 and p["oracle_fits"]["pinned"] == 90 + 22
    assert p["compute_ratio_seconds"] == 0.25 and p["compute_ratio_models"] == round(28 / 112, 3)
    assert p["best_test_strategy"] == "target_linear" and p["regret_vs_best"] == 10.5  # 72 - 61.5
    assert p["fixed_policy_regret"] == {"target_only": 12.0, "finetune": 2.0, "l2sp": 7.0, "target_linear": 0.0,
                                        "pooled_linear": 6.0}
    assert p["advisor_at_or_above_floor"] is True  # 61.5 >= 62 - max(0.5, 1 row of 100 = 1.0)
    assert p["verdict_agrees"] is False and p["opposite_sign"] is True and p["racing_stops"] == 1
    worse = pinned_figures({**advisor, "test_score": 0.6, "verdict_code": "no_gain", "stopped": {}}, stored, added,
                           n_test=1000)
    assert worse["advisor_at_or_above_floor"] is False and worse["opposite_sign"] is False
    s = summarize_pinned([p, worse])
    assert s["advisor_at_or_above_floor"]["k"] == 1 and s["opposite_sign_verdicts"] == 1
    assert s["best_fixed_policy"] == "target_linear" and s["best_fixed_policy_mean_regret_points"] == 0.0
    assert s["max_compute_ratio"] == 0.25 and s["racing_stops"] == {"total": 1, "per_scenario_mean": 0.5,
                                                                   "by_strategy": {"l2sp": 1}}


def test_linear_grids() -> None:
    from advisor.models.architectures import ModelSpec, build
    from advisor.plugin.contracts import TransferTask
    from advisor.plugin.registry import build_registry

    reg = build_registry(load_entry_points=True)
    d = _domain([6, 6, 6])
    task = TransferTask(source=d, target_train=d, target_val=d, backbone=build(ModelSpec("mlp", "features", (6,)), 3,
                                                                                seed=0))
    l2s = [p["l2"] for p in grid_points(reg.strategy("target_linear"), task, quick=False)]
    assert l2s == [1e-4, 1e-3, 1e-2, 0.1, 1]
    pooled = grid_points(reg.strategy("pooled_linear"), task, quick=True)
    assert len(pooled) == 15 and {p["target_share"] for p in pooled} == {0.2, 0.5, 0.8}


def test_reuse_oracle_on_a_tiny_scenario(tmp_path: Path) -> None:
    """--reuse-oracle end to end: the current advisor (1 trial per strategy) against a stored oracle."""
    import json

    from bench.quality import main

    src = _npz(tmp_path / "src.npz", _domain([30, 30, 30], seed=1), counts=True)
    tgt = _npz(tmp_path / "tgt.npz", _domain([12, 12, 12], seed=2), counts=True)
    toml = tmp_path / "s.toml"
    toml.write_text(f'[[scenario]]\nname = "toy"\nsource = "{src}"\ntarget = "{tgt}"\nlabels_per_class = 3\n'
                    'preprocess = "l1-zscore"\noracle = "quick"\n')
    stored = tmp_path / "stored"
    stored.mkdir()
    (stored / "toy.json").write_text(json.dumps(_stored_oracle("toy", {"source": 90, "train": 9, "val": 12,
                                                                       "test": 15})))
    out, cache = tmp_path / "out", tmp_path / "oracle"
    assert main(["--scenarios", str(toml), "--reuse-oracle", str(stored), "--out", str(stored)]) == 2
    # One trial per strategy: the default budget is the real runs' business, too slow for a unit test.
    assert main(["--scenarios", str(toml), "--reuse-oracle", str(stored), "--out", str(out),
                 "--advisor-trials", "1", "--oracle-cache", str(cache)]) == 0
    res = json.loads((out / "toy.json").read_text())
    pin, fits = res["pinned"], res["advisor"]["fits"]
    # quality against the current oracle of the same split (run now and cached), compute against the pinned one
    assert len(list(cache.glob("toy/split-0-v*.json.gz"))) == 1
    current = {r["strategy"]: r for r in res["oracle"]["rows"]}
    assert {"target_only", "target_linear", "pooled_linear", "finetune"} <= set(current)
    assert (current["target_linear"]["points"], current["target_linear"]["fits"]) == (5, 6)
    assert (current["pooled_linear"]["points"], current["pooled_linear"]["fits"]) == (15, 16)
    assert pin["oracle_fits"]["pinned"] == 90 + 22
    assert pin["pinned_verdict_code"] == res["oracle"]["pinned"]["verdict_code"] == "transfer_helps"
    assert pin["oracle_verdict_code"] == res["oracle"]["verdict_code"]
    best = max(current.values(), key=lambda r: (r["test_score"], -r["val_score"]))
    assert pin["best_test"] == best["test_score"]  # the pinned toy rows (0.6, 0.7) play no part in quality
    assert fits["trials"] >= 7 and fits["retrains"] >= 2 and fits["seed_repeats"] > 0
    assert fits["total"] == sum(fits["per_strategy"].values()) == pin["advisor_fits"]
    assert pin["compute_ratio_seconds"] == round(res["advisor"]["seconds"] / pin["oracle_seconds"]["pinned"], 3)
    doc = json.loads((out / "quality.json").read_text())
    assert doc["summary"]["pinned"]["scenarios"] == 1 and "fixed policy" in (out / "quality.md").read_text()
    assert not list((out / "runs").glob("**/meta*"))  # no meta-store written beside the run
    assert main(["--scenarios", str(toml), "--rescore", str(out), "--out", str(out)]) == 2
