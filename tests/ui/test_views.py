"""Every dashboard view rendered with streamlit's AppTest (no browser, no training)."""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import advisor_ui
import numpy as np
import pytest
from advisor_ui.command import RUNS_ENV
from streamlit.testing.v1 import AppTest

from advisor.runs import background as uirun

APP = str(Path(advisor_ui.__file__).parent / "app.py")
TIMEOUT = 60

ROW = {"strategy": "l2sp", "family": "model", "status": "complete", "params": {"lam": 0.01, "freeze": 1},
       "val_score": 0.91, "val_accuracy": 0.91, "val_ci": [0.88, 0.94], "ntg": -0.12, "ntg_ci": [-0.16, -0.08],
       "negative_transfer": False, "risk": "low", "reasons": ["the source is close to the target"], "trials": 1,
       "budget": 1, "errors": []}
TARGET_ONLY = {**ROW, "strategy": "target_only", "family": "baseline", "params": {"lr": 0.01}, "val_score": 0.79,
               "val_accuracy": 0.79, "val_ci": [0.75, 0.83], "ntg": None, "ntg_ci": None, "reasons": []}
HURTS = {**ROW, "strategy": "importance", "family": "instance", "val_score": 0.7, "ntg": 0.09,
         "ntg_ci": [0.05, 0.13], "negative_transfer": True, "risk": "high",
         "reasons": ["negative transfer measured: accuracy is 0.090 below target_only"]}
REPORT: dict[str, Any] = {
    "schema": 1, "score": "accuracy", "inputs": ["scenario: digits-shift"], "model_note": "cnn pretrained here",
    "notes": [], "complete": True,
    "recommendation": {"strategy": "l2sp", "family": "model", "params": {"lam": 0.01, "freeze": 1},
                       "val_score": 0.91, "val_ci": [0.88, 0.94], "test_score": 0.9, "test_accuracy": 0.9,
                       "test_gain": 0.11, "test_gain_ci": [0.07, 0.15], "test_size": 777,
                       "verdict": "Transfer helps: l2sp scores 0.900 on the held-out test split. Use l2sp.",
                       "verdict_code": "transfer_helps", "risk": "low",
                       "reasons": ["the source is close to the target"], "best_transfer_strategy": "l2sp"},
    "strategies": [ROW, TARGET_ONLY, HURTS],
    "advice": {"ranking": [{"strategy": "l2sp", "family": "model", "prior_score": 0.8, "risk": "low",
                            "reasons": []}], "evidence": {}},
    "not_applicable": {"dann": "needs unlabelled target data"},
    "baselines": {"target_only": TARGET_ONLY}, "signals": {"pad": {"value": 1.2, "p_value": None}},
    "failed": {}, "run": {"dir": "x", "storage": "x", "run": "demo", "seed": 0, "device": "cpu", "elapsed_s": 1.0},
}


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "runs"
    monkeypatch.setenv(RUNS_ENV, str(d))
    return d


def page(path: str, state: dict[str, Any] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in (state or {}).items():
        at.session_state[k] = v
    at.run()
    if path:
        at.switch_page(path)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "success", "warning", "error", "header",
                                  "title", "subheader") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def make_run(runs: Path, name: str = "demo-run", doc: dict[str, Any] | None = None) -> Path:
    d = runs / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"run": name, "fingerprint": "f"}))
    if doc is not None:
        (d / "report.json").write_text(json.dumps(doc))
    return d


def test_navigation_labels_and_default_data_page(runs: Path) -> None:
    at = page("")
    assert at.title[0].value == "Data"
    assert [r.value for r in at.radio] == ["Built-in scenario"]
    assert "digits-shift" in at.selectbox[0].options
    from advisor_ui.app import PAGES

    assert [t for _, t, _ in PAGES] == ["Data", "Similarity", "Search", "Recommendation", "Runs", "Plugins"]


def test_data_page_loads_a_scenario_and_shows_images(runs: Path) -> None:
    at = page("")
    at.button[0].click().run()
    assert not at.exception
    assert "Loaded inputs" in texts(at)
    assert at.session_state["request"]["demo"] == at.selectbox[0].value
    assert len(at.image) >= 2  # sample grids of source and target


def test_data_page_wrong_path_is_one_line_error(runs: Path) -> None:
    at = page("")
    at.radio[0].set_value("Paths on this machine").run()
    at.text_input(key="data_target").input(str(runs / "missing.npz")).run()
    at.text_input(key="data_model").input("mlp").run()
    at.button[0].click().run()
    assert not at.exception
    assert len(at.error) == 1 and "\n" not in at.error[0].value
    assert "missing.npz" in at.error[0].value


def test_data_page_feature_tables(runs: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for name in ("src", "tgt"):
        np.savez(tmp_path / f"{name}.npz", X=rng.normal(size=(40, 5)).astype(np.float32), y=np.arange(40) % 2)
    at = page("")
    at.radio[0].set_value("Paths on this machine").run()
    at.text_input(key="data_source").input(str(tmp_path / "src.npz"))
    at.text_input(key="data_target").input(str(tmp_path / "tgt.npz"))
    at.text_input(key="data_model").input("none")
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert "40 rows" in texts(at)


def test_upload_checks(tmp_path: Path) -> None:
    from advisor_ui.common import save_upload

    with pytest.raises(ValueError, match="unsupported"):
        save_upload("x.exe", b"1", tmp_path)
    with pytest.raises(ValueError, match="not a valid zip"):
        save_upload("x.zip", b"not a zip", tmp_path)
    assert save_upload("t.csv", b"a,label\n1,0\n", tmp_path).read_text().startswith("a,label")


def test_similarity_page_with_raw_features(runs: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "s.npz", X=rng.normal(size=(60, 4)).astype(np.float32), y=np.arange(60) % 3)
    np.savez(tmp_path / "t.npz", X=rng.normal(2, 1, size=(60, 4)).astype(np.float32), y=np.arange(60) % 3)
    state = {"request": {"source": str(tmp_path / "s.npz"), "target": str(tmp_path / "t.npz"), "model": "none"}}
    at = page("views/similarity.py", state)
    assert at.title[0].value == "Similarity"
    at.toggle(key="sim_go").set_value(True).run()
    assert not at.exception
    assert "Source vs target features (PCA)" in texts(at)
    assert len(at.get("plotly_chart")) == 1
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    colours = {t["name"]: t["marker"]["color"] for t in spec["data"]}
    assert len(colours) == 2 and len(set(colours.values())) == 2  # source and target in distinct colours


def test_metric_names_in_words() -> None:
    from advisor_ui.common import metric_name

    assert metric_name("mmd", "Maximum mean discrepancy between source and target features (x).") == \
        "mmd: Maximum mean discrepancy"
    assert metric_name("pad", "Proxy A-distance 2(1 - 2e), e the error") == "pad: Proxy A-distance 2"
    assert metric_name("knn", "") == "knn"


def test_similarity_page_without_inputs(runs: Path) -> None:
    at = page("views/similarity.py")
    assert "Load inputs on the Data page first." in texts(at)


def test_plugins_page_lists_builtins(runs: Path) -> None:
    at = page("views/plugins.py")
    plugins = at.dataframe[0].value
    assert "builtin_scenarios" in set(plugins["plugin"])
    assert "digits-shift" in " ".join(plugins["scenarios"])
    assert at.subheader[1].value == "Load failures"


def test_recommendation_page_renders_a_preset_report(runs: Path) -> None:
    at = page("views/recommendation.py", {"report": copy.deepcopy(REPORT)})
    assert at.header[0].value == "Recommended strategy: l2sp"
    assert "transfer_helps" in at.success[0].value
    assert at.metric[1].value == "+0.110"
    assert "95% CI [+0.070, +0.150]" in texts(at)
    params = at.dataframe[0].value
    assert dict(zip(params["parameter"], params["value"], strict=True)) == {"lam": "0.01000", "freeze": "1"}
    ranked = at.dataframe[1].value
    assert list(ranked["strategy"]) == ["l2sp", "target_only", "importance"]
    assert list(ranked["negative transfer"]) == ["no", "\u2013", "yes"]  # the reference has no gap to itself
    assert list(ranked["prior risk"]) == ["low", "low", "high"]
    assert len(at.get("plotly_chart")) == 3  # the gain, the validation scores, the NTG
    assert "On validation l2sp gains +0.120 [+0.080, +0.160] over the reference" in texts(at)
    assert "The two intervals overlap" in texts(at)
    assert at.metric[2].value == "no negative transfer measured"
    assert "Not applicable: dann" in texts(at)
    assert at.get("download_button")  # report.json


def test_ntg_chart_marks_negative_transfer() -> None:
    from advisor_ui.views.recommendation import ntg_chart  # noqa: PLC0415

    fig = ntg_chart([ROW, TARGET_ONLY, HURTS], "target_linear")
    assert fig.layout.xaxis.title.text.startswith("NTG = score(target_linear) - score(strategy)")
    assert [t.y[0] for t in fig.data] == ["l2sp", "importance"]  # target_only has no NTG
    assert fig.data[1].marker.color != fig.data[0].marker.color


def test_recommendation_page_offers_export_download(runs: Path) -> None:
    d = make_run(runs, doc=REPORT)
    (d / uirun.EXPORT_NAME).write_bytes(b"weights")
    at = page("views/recommendation.py", {"report": copy.deepcopy(REPORT), "report_dir": str(d)})
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download report.json", "Download the exported model (model.pt)"]


def test_recommendation_page_without_report(runs: Path) -> None:
    at = page("views/recommendation.py")
    assert "No report yet" in texts(at)


def test_recommendation_page_no_verdict(runs: Path) -> None:
    doc = {**copy.deepcopy(REPORT), "recommendation": None, "verdict_missing": "no verdict: incomplete"}
    at = page("views/recommendation.py", {"report": doc})
    assert at.header[0].value == "No recommendation yet"
    assert "no verdict: incomplete" in texts(at)


def test_runs_page_lists_and_reopens(runs: Path) -> None:
    make_run(runs, "old-run", REPORT)
    (runs / "not-a-run").mkdir()
    at = page("views/runs.py")
    table = at.dataframe[0].value
    assert list(table["run"]) == ["old-run"]
    assert list(table["pick"]) == ["l2sp"]
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["report"]["recommendation"]["strategy"] == "l2sp"
    assert at.session_state["report"]["unfinished"] == []


def test_runs_page_empty(runs: Path) -> None:
    at = page("views/runs.py")
    assert "No run yet" in texts(at)


def test_search_page_form(runs: Path) -> None:
    at = page("views/search.py")
    assert at.title[0].value == "Search"
    assert at.button[0].label == "Start search"
    assert at.number_input(key="search_trials").value == 2
    assert at.checkbox(key="search_export").value is False
    assert at.selectbox(key="search_scenario").value == "digits-shift"
    assert "No search started" in texts(at)


def test_search_page_shows_a_failed_run_in_one_line(runs: Path) -> None:
    d = make_run(runs, "failed-run")
    proc = uirun.launch([sys.executable, "-c", "import sys; sys.stderr.write('advisor: error: bad input\\n'); "
                                         "sys.exit(2)"], d)
    proc.wait(30)
    at = page("views/search.py", {"search_run": str(d)})
    assert "Failed" in texts(at)
    assert [e.value for e in at.error] == ["advisor: error: bad input"]


def test_search_page_shows_a_finished_run(runs: Path) -> None:
    d = make_run(runs, "done-run", REPORT)
    proc = uirun.launch([sys.executable, "-c", "print('{}')"], d)
    proc.wait(30)
    at = page("views/search.py", {"search_run": str(d)})
    assert "Recommended strategy: l2sp (transfer_helps)" in texts(at)
    assert at.session_state["report"]["recommendation"]["strategy"] == "l2sp"


def test_cancel_a_running_process(runs: Path) -> None:
    d = make_run(runs, "slow-run")
    uirun.launch([sys.executable, "-c", "import time; time.sleep(60)"], d)
    assert uirun.run_status(d).state == "running"
    assert uirun.cancel_run(d, wait_s=5)
    assert uirun.run_status(d).state == "cancelled"
    assert not uirun.cancel_run(d)


def test_trial_progress_reads_the_run_storage(runs: Path) -> None:
    import optuna

    from advisor.runs.storage import open_storage

    d = make_run(runs, "demo-run")
    storage = open_storage(str(d / "optuna.journal"))
    study = optuna.create_study(study_name="demo-run:l2sp", storage=storage, direction="maximize")
    study.set_user_attr("budget", 3)
    def objective(t: optuna.Trial) -> float:
        x = t.suggest_float("x", 0, 1)
        t.report(x, 0)
        return x

    study.optimize(objective, n_trials=2)
    optuna.create_study(study_name="other-run:l2sp", storage=storage)
    rows = uirun.trial_progress(d)
    assert [(r["strategy"], r["finished"], r["budget"]) for r in rows] == [("l2sp", 2, 3)]
    assert uirun.load_study(d, "l2sp").trials[0].state.name == "COMPLETE"
    at = page("views/search.py", {"search_run": str(d)})
    assert at.dataframe[0].value["strategy"].tolist() == ["l2sp"]
    # every strategy's history, then l2sp's parallel coordinates, parameter importance and per-epoch values
    assert len(at.get("plotly_chart")) == 4


def _alive(pid: int) -> bool:
    """A live (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_double_start_is_refused_and_start_is_disabled(runs: Path) -> None:
    d = make_run(runs, "busy-run")
    uirun.launch([sys.executable, "-c", "import time; time.sleep(60)"], d)
    try:
        from advisor.models.inputs import InputRequest
        from advisor.pipeline import RecommendOptions

        with pytest.raises(uirun.RunActive, match="already running"):
            uirun.start_run(runs, InputRequest(demo="digits-shift"), RecommendOptions(trials=0), run_dir=d)
        assert len(uirun._processes(d)) == 1  # the second start launched nothing
        at = page("views/search.py", {"search_run": str(d)})
        start = next(b for b in at.button if b.label == "Start search")
        assert start.disabled
        assert "Running" in texts(at)
    finally:
        assert uirun.cancel_run(d, wait_s=5)


def test_cancel_stops_every_process_the_dashboard_started(runs: Path) -> None:
    d = make_run(runs, "tree-run")
    pid_file = d / "child.pid"
    code = ("import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; "
            f"time.sleep(60)']); open({str(pid_file)!r}, 'w').write(str(c.pid)); time.sleep(60)")
    parent = uirun.launch([sys.executable, "-c", code], d)
    deadline = time.time() + 30
    while not (pid_file.exists() and pid_file.read_text()):
        assert time.time() < deadline
        time.sleep(0.1)
    child = int(pid_file.read_text())
    assert _alive(child)
    assert uirun.cancel_run(d, wait_s=5)
    time.sleep(0.5)
    assert parent.poll() is not None and not _alive(child)
    assert uirun.run_status(d).state == "cancelled"


def test_interrupted_trials_are_not_failures_and_plots_say_so(runs: Path) -> None:
    import optuna
    from optuna.trial import TrialState

    from advisor.runs.storage import open_storage

    d = make_run(runs, "cut-run")
    study = optuna.create_study(study_name="cut-run:target_only", storage=open_storage(str(d / "optuna.journal")),
                                direction="maximize")
    study.set_user_attr("budget", 2)
    cut = study.ask()
    study.tell(cut, state=TrialState.FAIL)  # a trial the cancel stopped: no error recorded
    broken = study.ask()
    broken.set_user_attr("error", "RuntimeError: boom")
    study.tell(broken, state=TrialState.FAIL)
    (row,) = uirun.trial_progress(d)
    assert (row["failed"], row["interrupted"], row["finished"]) == (1, 1, 0)
    at = page("views/search.py", {"search_run": str(d)})
    assert not at.get("plotly_chart")  # no empty axes
    assert "No strategy has a finished trial yet" in texts(at)
    assert "not failures of the strategy" in texts(at)


def test_upload_mode_has_a_model_field_and_trials_can_be_zero(runs: Path) -> None:
    at = page("")
    at.radio[0].set_value("Upload files").run()
    assert at.text_input(key="up_model").label.startswith("Model")
    at = page("views/search.py")
    assert at.number_input(key="search_trials").min == 0
    at.checkbox(key="search_quick").check().run()
    assert at.number_input(key="search_trials").disabled
    next(b for b in at.button if b.label == "Start search").click().run()
    assert not at.exception and not at.error
    d = Path(at.session_state["search_run"])
    try:
        assert json.loads((d / uirun.REQUEST_FILE).read_text())["options"]["trials"] == 0
    finally:
        uirun.cancel_run(d, wait_s=5)


def test_progress_phases_and_100_percent_only_with_the_report(runs: Path) -> None:
    d = make_run(runs, "phase-run")
    proc = uirun.launch([sys.executable, "-c", "import time; time.sleep(60)"], d)
    writer = uirun.ProgressWriter(d, n_seeds=5)
    assert uirun.run_progress(d).phase == "quick advice"
    writer("search_start", {"total": 4, "done": 0})
    writer("trial", {"strategy": "l2sp", "number": 0, "state": "COMPLETE", "value": 0.5})
    p = uirun.run_progress(d)
    assert (p.label, p.state) == ("Trials 1/4", "running")
    writer("search_end", {"complete": True})
    writer("repeat", {"strategy": "l2sp"})
    assert uirun.run_progress(d).label.startswith("Seed repeats 1/")
    writer("final", {"strategy": "l2sp", "reference": "target_only"})
    p = uirun.run_progress(d)
    assert p.phase == "test retrains" and p.fraction < 1.0 and p.elapsed_s is not None
    uirun.cancel_run(d, wait_s=5)
    assert proc.poll() is not None
    (d / "report.json").write_text(json.dumps(REPORT))
    (d / uirun.EXIT_FILE).write_text(json.dumps({"returncode": 0}))
    p = uirun.run_progress(d)
    assert (p.state, p.phase, p.fraction) == ("finished", "done", 1.0)
    (d / "report.json").write_text(json.dumps({**REPORT, "complete": False}))
    assert uirun.run_progress(d).fraction < 1.0


def test_runs_table_summarises_and_links(runs: Path) -> None:
    make_run(runs, "good-run", {**REPORT, "run": {**REPORT["run"], "elapsed_s": 95.0}})
    make_run(runs, "advice-run", {**REPORT, "recommendation": None, "strategies": []})
    at = page("views/runs.py")
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["good-run", "verdict"] == "transfer_helps" and table.loc["good-run", "pick"] == "l2sp"
    assert table.loc["good-run", "gain"] == pytest.approx(0.11)
    assert table.loc["good-run", "gain 95% CI"] == "[+0.070, +0.150]"
    assert table.loc["good-run", "duration"] == 95.0 and table.loc["good-run", "trials"] == "3/3"
    assert table.loc["good-run", "link"] == "recommendation?run=good-run"
    assert table.loc["advice-run", "verdict"] == "quick advice only"


def test_a_run_url_opens_its_report_and_survives_a_reload(runs: Path) -> None:
    make_run(runs, "shared-run", REPORT)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["run"] = "shared-run"
    at.run()
    at.switch_page("views/recommendation.py").run()
    assert not at.exception
    assert at.header[0].value == "Recommended strategy: l2sp"
    assert at.query_params["run"] == ["shared-run"] or at.query_params["run"] == "shared-run"
    fresh = AppTest.from_file(APP, default_timeout=TIMEOUT)  # a reload: a new session, the same URL
    fresh.query_params["run"] = "shared-run"
    fresh.run()
    fresh.switch_page("views/recommendation.py").run()
    assert fresh.header[0].value == "Recommended strategy: l2sp"
    missing = AppTest.from_file(APP, default_timeout=TIMEOUT)
    missing.query_params["run"] = "no-such-run"
    missing.run()
    missing.switch_page("views/recommendation.py").run()
    assert "There is no run named" in texts(missing)


def test_delete_refuses_a_running_run_and_removes_a_stopped_one(runs: Path) -> None:
    d = make_run(runs, "old-run", REPORT)
    uirun.launch([sys.executable, "-c", "import time; time.sleep(60)"], d)
    with pytest.raises(uirun.RunActive):
        uirun.delete_run(d)
    uirun.cancel_run(d, wait_s=5)
    uirun.delete_run(d)
    assert not d.exists()


def test_runs_page_lists_the_runs_of_a_storage(runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import optuna
    from advisor_ui.command import STORAGE_ENV

    from advisor.runs.storage import open_storage

    journal = tmp_path / "shared.journal"
    storage = open_storage(str(journal))
    for strategy, n in (("l2sp", 2), ("target_only", 1)):
        study = optuna.create_study(study_name=f"remote-run:{strategy}", storage=storage, direction="maximize")
        study.set_user_attr("budget", 2)
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n)
    assert [(r["run"], r["trials"], r["budget"], r["state"]) for r in uirun.storage_runs(str(journal))] == [
        ("remote-run", 3, 4, "stopped")]
    monkeypatch.setenv(STORAGE_ENV, str(journal))
    at = page("views/runs.py")
    assert "Runs in the storage" in texts(at)
    assert list(at.dataframe[0].value["run"]) == ["remote-run"]
    assert next(b for b in at.button if b.label == "Compute its report here").disabled  # budgets still open


def test_recommendation_charts_mark_the_pick_and_the_reference() -> None:
    from advisor_ui.views.recommendation import gain_chart, reconcile, score_chart  # noqa: PLC0415

    doc = copy.deepcopy(REPORT)
    fig = score_chart(doc)
    names = {t.name: list(t.y) for t in fig.data}
    assert names == {"recommended": ["l2sp"], "reference (target only)": ["target_only"],
                     "negative transfer measured": ["importance"]}
    assert fig.data[0].marker.symbol == "star"
    assert any(s.x0 == 0.79 for s in fig.layout.shapes)  # the reference line at its validation score
    gains = gain_chart(doc)
    assert [list(t.y)[0] for t in gains.data] == ["validation", "test (held out, scored once)"]
    assert [t.x[0] for t in gains.data] == [pytest.approx(0.12), 0.11]
    doc["recommendation"].update(test_gain=0.01, test_gain_ci=[-0.01, 0.03])
    assert "optimistic" in reconcile(doc)


def test_recommendation_page_one_test_number_and_the_tie_rule(runs: Path) -> None:
    doc = copy.deepcopy(REPORT)
    doc["recommendation"].update(test_score_mean=0.935, test_score=0.942, test_retrains=5)
    doc["strategies"][2] = {**HURTS, "val_score": 0.912, "negative_transfer": False, "ntg": -0.122}
    at = page("views/recommendation.py", {"report": doc})
    assert at.metric[0].value == "0.935"
    assert "The exported model (the first retrain) scores 0.942" in texts(at)
    assert "importance is first by validation score but l2sp was chosen" in texts(at)


def test_recommendation_page_follows_the_tie_broken_field(runs: Path) -> None:
    doc = copy.deepcopy(REPORT)
    doc["strategies"][2] = {**HURTS, "val_score": 0.912, "negative_transfer": False, "ntg": -0.122}
    doc["recommendation"]["tie_broken"] = False  # the field wins over what the rows suggest
    at = page("views/recommendation.py", {"report": doc})
    assert "Tie rule" not in texts(at) and "is first by validation score" not in texts(at)
    doc["recommendation"]["tie_broken"] = True
    at = page("views/recommendation.py", {"report": doc})
    assert ("Tie rule: l2sp was chosen as the best transfer strategy although importance scores higher on "
            "validation (0.912 against 0.910)") in texts(at)


def _studies(runs: Path, trials: dict[str, list[tuple[float | None, float]]], name: str = "plot-run") -> Path:
    """A run whose storage holds one study per strategy; a trial is (its parameter x or None, its score)."""
    import optuna
    from optuna.distributions import FloatDistribution

    from advisor.runs.storage import open_storage

    d = make_run(runs, name)
    storage = open_storage(str(d / "optuna.journal"))
    for strategy, specs in trials.items():
        study = optuna.create_study(study_name=f"{name}:{strategy}", storage=storage, direction="maximize")
        study.set_user_attr("budget", len(specs))
        for x, value in specs:
            params, dists = ({"x": x}, {"x": FloatDistribution(0.0, 1.0)}) if x is not None else ({}, {})
            study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value,
                                                      intermediate_values={0: value / 2, 1: value}))
    return d


def _charts(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def test_search_history_of_every_strategy_with_racing_stops(runs: Path) -> None:
    from advisor.search.study import STOPPED_ATTR

    d = _studies(runs, {"l2sp": [(0.1, 0.60), (0.5, 0.80), (0.9, 0.70), (0.3, 0.85)],
                        "probe": [(0.2, 0.50), (0.4, 0.55), (0.6, 0.52)]})
    reason = "after 3 trials its best validation score 0.550 trailed l2sp's 0.800 by more than 0.020"
    uirun.load_study(d, "probe").set_user_attr(STOPPED_ATTR, {"after_trials": 3, "reason": reason})
    at = page("views/search.py", {"search_run": str(d)})
    history, parallel, importance, _ = _charts(at)
    lines = {t["name"]: t for t in history["data"] if t.get("mode") == "lines+markers"}
    assert lines["l2sp"]["x"] == [0, 1, 2, 3] and lines["l2sp"]["y"] == [0.6, 0.8, 0.8, 0.85]  # best so far
    assert lines["probe"]["y"] == [0.5, 0.55, 0.55]
    (stop,) = [t for t in history["data"] if t["name"] == "stopped by racing"]
    assert stop["x"] == [2] and stop["y"] == [0.55] and stop["marker"]["symbol"] == "x"
    assert f"probe was stopped by racing: {reason}" in texts(at)
    assert history["layout"]["xaxis"]["range"] == [-0.5, 3.5]
    assert at.selectbox(key="plot_strategy").value == "l2sp"
    assert parallel["layout"]["title"]["text"] == "Parallel Coordinate Plot"
    assert importance["data"][0]["type"] == "bar" and importance["data"][0]["y"] == ["x"]
    at.selectbox(key="plot_strategy").set_value("probe").run()
    assert not at.exception and len(at.get("plotly_chart")) == 4


def test_search_plots_of_one_trial_and_of_constant_parameters_say_why(runs: Path) -> None:
    d = _studies(runs, {"l2sp": [(0.5, 0.8)], "target_only": [(None, 0.7), (None, 0.7)]}, name="one-run")
    at = page("views/search.py", {"search_run": str(d)})
    history = _charts(at)[0]
    assert history["layout"]["xaxis"]["range"] == [-0.5, 1.5]  # trial 0 and 1, not -1..1
    lo, hi = history["layout"]["yaxis"]["range"]
    assert lo == pytest.approx(0.68) and hi == pytest.approx(0.82)  # around the scores, not 0..1.5
    assert "one finished trial shows one point" in texts(at)
    assert len(at.get("plotly_chart")) == 3  # history, parallel coordinates, per-epoch values
    assert "Parameter importance needs at least two finished trials; this strategy has 1." in texts(at)
    at.selectbox(key="plot_strategy").set_value("target_only").run()
    assert "target_only has no tuned parameter" in texts(at)
    assert "no tuned parameter, so there is no importance to show" in texts(at)
    same = _studies(runs, {"l2sp": [(0.5, 0.8), (0.5, 0.81)]}, name="same-run")
    at = page("views/search.py", {"search_run": str(same)})
    assert "Every finished trial used the same parameters" in texts(at)


def test_core_errors_are_told_in_the_pages_words():
    from advisor_ui.common import error_line

    from advisor.errors import InputError

    line = error_line(InputError("give --target PATH (with --source PATH and/or --model) or --demo"))
    assert "--" not in line and "the target data field" in line and "the model field" in line
    assert error_line(ValueError("not a zip file")) == "ValueError: not a zip file"


def test_data_page_shows_a_path_error_under_the_field_it_concerns(runs: Path) -> None:
    at = page("")
    at.radio[0].set_value("Paths on this machine").run()
    at.text_input(key="data_target").input(str(runs / "missing.npz")).run()
    at.text_input(key="data_model").input("mlp").run()
    at.button[0].click().run()

    def walk(node: Any, out: list[Any]) -> list[Any]:
        children = getattr(node, "children", None)
        for child in (children.values() if isinstance(children, dict) else []):
            out.append(child)
            walk(child, out)
        return out

    order = [(type(e).__name__, getattr(e, "key", None)) for e in walk(at.main, [])]
    error = order.index(("Error", None))
    assert order.index(("TextInput", "data_target")) < error < order.index(("TextInput", "data_unlabeled"))


def test_recommendation_page_says_the_cross_validated_pick(runs: Path) -> None:
    doc = copy.deepcopy(REPORT)
    doc["recommendation"].update(tie_broken=False, selected_by={
        "b": "crossval", "reference": "crossval", "crossval_folds": 3, "crossval_rows": 130, "no_gain_margin": 0.0})
    for r, cv in zip(doc["strategies"], (0.61, 0.55, 0.5, 0.4, 0.3, 0.2, 0.1), strict=False):
        r["cv_score"] = cv
    at = page("views/recommendation.py", {"report": doc})
    assert "picked by 3-fold cross-validation on train+val (130 rows" in texts(at)
    table = next(d.value for d in at.dataframe if "CV train+val" in d.value.columns)
    assert table["CV train+val"].tolist()[:2] == ["0.610", "0.550"]
