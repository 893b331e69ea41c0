"""Issue 5: the recommendation pipeline end to end on the built-in scenarios, and its faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from advisor.errors import InputError
from advisor.models.inputs import InputRequest
from advisor.pipeline import RecommendOptions, recommend
from advisor.plugin.registry import build_registry
from advisor.runs.storage import open_storage

REG = build_registry(third_party=False)


def _trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(str(run_dir / "optuna.journal"))
    out = []
    for s in optuna.get_all_study_summaries(storage):
        out += optuna.load_study(study_name=s.study_name, storage=storage).trials
    return out


def test_quick_advice_only_records_no_budget(tmp_path):
    doc = recommend(InputRequest(demo="digits-shift"), RecommendOptions(trials=0, run_dir=str(tmp_path)), REG)
    assert doc["recommendation"] is None and doc["strategies"] == []
    ranking = doc["advice"]["ranking"]
    assert {r["strategy"] for r in ranking} >= {"target_only", "finetune", "l2sp", "linear_probe"}
    assert [r["prior_score"] for r in ranking] == sorted((r["prior_score"] for r in ranking), reverse=True)
    assert all(r["risk"] in ("low", "medium", "high") for r in ranking)
    assert {"knn", "logme", "pad", "mmd"} <= set(doc["signals"])
    assert not (tmp_path / "optuna.journal").exists()
    assert json.loads((tmp_path / "report.json").read_text())["advice"] == doc["advice"]


def test_a_run_of_another_task_is_refused(tmp_path):
    recommend(InputRequest(demo="digits-shift"), RecommendOptions(trials=0, run_dir=str(tmp_path)), REG)
    with pytest.raises(InputError, match="belongs to a different task"):
        recommend(InputRequest(demo="digits-shift", seed=1), RecommendOptions(trials=0, run_dir=str(tmp_path)), REG)


def test_bad_storage_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "advisor", "recommend", "--demo", "--trials", "1",
                          "--run-dir", str(tmp_path / "r"), "--storage", "postgresql://nobody:secret@127.0.0.1:1/x"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("advisor: error: cannot open storage postgresql://nobody:***@127.0.0.1:1/x")
    assert "secret" not in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_a_raising_strategy_fails_its_trials_and_the_run_goes_on(tmp_path):
    from advisor import hookimpl
    from advisor.plugin.contracts import Needs

    class Broken:
        name = "broken"
        family = "model"
        role = "transfer"
        description = "always raises"
        needs = Needs()

        def default_params(self, task):
            return {}

        def search_space(self, trial, task):
            return {"x": trial.suggest_float("x", 0.1, 1.0)}

        def fit(self, task, params, report):
            raise RuntimeError("broken on purpose")

        def risks(self, signals, task):
            return []

    class Plugin:
        @hookimpl
        def advisor_register_strategies(self, register):
            register(Broken())

    reg = build_registry(third_party=False, plugins=[("fake", Plugin())])
    doc = recommend(InputRequest(demo="digits-shift"),
                    RecommendOptions(strategies="broken", trials=4, max_epochs=4, run_dir=str(tmp_path), n_seeds=1),
                    reg)
    assert doc["failed"]["broken"] == "RuntimeError: broken on purpose"
    rows = {r["strategy"]: r for r in doc["strategies"]}
    assert rows["broken"]["status"] == "failed"
    broken = [t for t in _trials(tmp_path) if t.user_attrs.get("error")]
    assert len(broken) == 3  # stopped after 3 failures in a row, not retried forever
    assert doc["recommendation"] is not None  # the baselines still produced a verdict


def _cli(run_dir: Path, trials: int) -> list[str]:
    return [sys.executable, "-m", "advisor", "recommend", "--demo", "--strategies", "l2sp", "--trials", str(trials),
            "--max-epochs", "8", "--threads", "1", "--run-dir", str(run_dir), "--json"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_interrupted_search_loses_nothing(tmp_path, sig):
    env = {**os.environ, "TRANSFER_ADVISOR_NO_PLUGINS": "1"}
    proc = subprocess.Popen(_cli(tmp_path, 3), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 300
    done: list = []
    while time.time() < deadline:
        if (tmp_path / "optuna.journal").exists():
            done = [t for t in _trials(tmp_path) if t.state.is_finished() and t.state != optuna.trial.TrialState.FAIL]
            if len(done) >= 4:
                break
        time.sleep(0.3)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert len(done) >= 4, "the search did not get going"
    before = {t.datetime_start: t.params for t in done}
    out = subprocess.run(_cli(tmp_path, 3), capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    after = _trials(tmp_path)
    finished = [t for t in after if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    # every finished trial is still there, unchanged, and none was repeated
    starts = {t.datetime_start: t.params for t in finished}
    for start, params in before.items():
        assert starts[start] == params
    assert len(before) == len(done)
    doc = json.loads(out.stdout)
    assert all(r["trials"] == 3 for r in doc["strategies"])
    assert len(finished) == 3 * len(doc["strategies"])
    # the interrupted trial (if one was running) was failed, not left RUNNING
    assert not [t for t in after if t.state == optuna.trial.TrialState.RUNNING]


def _run(tmp_path: Path, demo: str, **kw) -> dict:
    opts = RecommendOptions(run_dir=str(tmp_path / demo), threads=None, **kw)
    return recommend(InputRequest(demo=demo), opts, REG)


@pytest.mark.slow
def test_digits_shift_transfer_helps(tmp_path):
    doc = _run(tmp_path, "digits-shift")
    rec = doc["recommendation"]
    assert rec["verdict_code"] == "transfer_helps", rec["verdict"]
    assert rec["strategy"] != "target_only" and rec["test_gain"] > 0 and rec["test_gain_ci"][0] > 0
    rows = {r["strategy"]: r for r in doc["strategies"]}
    assert set(rows) >= {"target_only", "linear_probe", "finetune", "l2sp", "progressive_unfreezing",
                         "importance_weighting", "feature_alignment"}
    for r in rows.values():  # every budget ran, or racing stopped the strategy after the first round
        assert r["trials"] == r["budget"] or (r["stopped"] and r["trials"] >= r["stopped"]["after_trials"] >= 3)
    assert all(r["stopped"] is None for r in rows.values() if r["role"] == "reference")
    assert rows["finetune"]["ntg"] < 0 and not rows["finetune"]["negative_transfer"]
    assert (tmp_path / "digits-shift" / "report.md").read_text().count("transfer_helps") >= 1
    # the reference is the best reference-role candidate; every interval says what it covers
    assert rows[rec["reference"]]["role"] == "reference" and "target_only" in doc["baselines"]
    # B and the reference are picked by cross-validation on train+val, every strategy a candidate (ties within
    # one row of train+val go to the advice)
    sel = rec["selected_by"]
    assert (sel["b"], sel["reference"], sel["crossval_folds"]) == ("crossval", "crossval", 3)
    assert sel["crossval_rows"] == 20 + 50  # train + val of the scenario's split
    assert rec["reference_tie_band"] == rec["tie_band"] == round(1 / sel["crossval_rows"], 4)
    assert all(r["cv_score"] is not None for r in rows.values())
    best_ref = max(r["cv_score"] for r in rows.values() if r["role"] == "reference")
    assert rows[rec["reference"]]["cv_score"] >= best_ref - rec["reference_tie_band"] - 1e-9
    best_b = max(r["cv_score"] for r in rows.values() if r["role"] != "reference")
    assert rows[rec["best_transfer_strategy"]]["cv_score"] >= best_b - rec["tie_band"] - 1e-9
    retrains = 5 * rec["test_gain_looks"]  # 5 per arm, 10 after a second look
    assert rec["test_retrains"] == retrains and rec["test_gain_seeds"] == [retrains, retrains]
    assert rec["test_gain_covers"] == doc["intervals"]["covers"] == "training seeds and samples"
    # 5 seed repeats, 3 for a strategy the race stopped (never a reference)
    assert all(r["seeds"] == (3 if r["stopped"] else 5) for r in rows.values())


@pytest.mark.slow
def test_digits_conflict_flags_source_label_strategies(tmp_path):
    doc = _run(tmp_path, "digits-conflict")
    rows = {r["strategy"]: r for r in doc["strategies"]}
    for name in ("importance_weighting", "feature_alignment"):
        assert rows[name]["negative_transfer"] is True, rows[name]
        assert rows[name]["ntg_ci"][0] > 0
        assert any("label" in reason for reason in rows[name]["reasons"]), rows[name]["reasons"]
        assert doc["recommendation"]["strategy"] != name
    assert not rows["finetune"]["negative_transfer"]


@pytest.mark.slow
def test_digits_distant_gives_little_or_nothing(tmp_path):
    doc = _run(tmp_path, "digits-distant")
    rec = doc["recommendation"]
    # Little or nothing: fine-tuning the pixel-shuffled source can edge out the target alone by a
    # point or two (seed 0: +1.4 [+0.8, +2.1], which the rule calls transfer_helps), never by much,
    # and nothing that leans on the source's labels or frozen features is recommended.
    assert rec["test_gain"] < 0.03, rec["verdict"]
    assert rec["verdict_code"] in ("no_gain", "transfer_hurts") or rec["strategy"] in (
        "finetune", "l2sp", "progressive_unfreezing"), rec["verdict"]
    assert rec["strategy"] not in ("importance_weighting", "feature_alignment", "linear_probe"), rec["verdict"]


@pytest.mark.slow
def test_timeout_caps_one_invocation_and_a_rerun_finishes(tmp_path):
    opts = dict(strategies="finetune", trials=3, max_epochs=6, run_dir=str(tmp_path), n_seeds=1)
    first = recommend(InputRequest(demo="digits-shift"), RecommendOptions(timeout=0.01, **opts), REG)
    assert first["complete"] is False
    assert sum(r["trials"] for r in first["strategies"]) < 3 * len(first["strategies"])
    from advisor.runs.reopen import load_run_report

    assert load_run_report(tmp_path)["unfinished"]
    second = recommend(InputRequest(demo="digits-shift"), RecommendOptions(**opts), REG)
    assert second["complete"] is True and all(r["trials"] == 3 for r in second["strategies"])
    assert second["recommendation"] is not None


def test_package_level_api_is_lazy_and_callable():
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, advisor; assert 'torch' not in sys.modules; "
         "f = advisor.recommend; import advisor.pipeline as p; assert f is p.recommend; "
         "assert advisor.InputRequest is __import__('advisor.models.inputs').models.inputs.InputRequest; print('ok')"],
        capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "ok", probe.stderr
