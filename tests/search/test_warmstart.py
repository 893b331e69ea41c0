"""Warm starts: a new study tries the best settings of the most similar past tasks after its default and before
TPE; settings are checked against the current search space and deduplicated; a resumed study gets none."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest

from advisor.plugin.contracts import FitResult, Needs
from advisor.runs.metastore import FolderMetaStore, load_records
from advisor.runs.storage import open_storage
from advisor.search.study import SearchState, make_study, raise_budget, run_search
from advisor.search.warmstart import (
    MAX_DISTANCE,
    NEAR,
    TRIAL_ATTR,
    distances,
    nearest,
    plan,
    replay,
    setting_distance,
    warm_started,
)
from tests.search.fake_strategy import fake_task


class Knobs:
    """Two searched knobs, one of them conditional, and a fixed ``epochs`` the space does not search."""

    name = "knobs"
    family = "model"
    role = "transfer"
    description = "knobs"
    needs = Needs()

    def __init__(self) -> None:
        self.fits: list[dict] = []

    def default_params(self, task):
        return {"lr": 0.01, "decay_on": False, "epochs": 5}

    def search_space(self, trial, task):
        on = trial.suggest_categorical("decay_on", [False, True])
        out = {"lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True), "decay_on": on, "epochs": 5}
        if on:
            out["decay"] = trial.suggest_float("decay", 1e-6, 1e-2, log=True)
        return out

    def fit(self, task, params, report):
        self.fits.append(dict(params))
        score = float(1 / (1 + abs(np.log10(params["lr"]) + 2.5)))  # best at lr = 10^-2.5
        return FitResult(model=None, val_score=score, val_pred=np.zeros(4, dtype=np.int64), epochs=1)

    def risks(self, signals, task):
        return []


def record(rid: str, quality: float, params: dict | None, kind: str = "features", strategy: str = "knobs",
           val: float | None = 0.8) -> dict:
    entry = {"val_score": val, "params": params, "status": "complete"}
    return {"id": rid, "data_kind": kind, "evidence": {"feature_quality": quality, "scarcity": 0.5},
            "strategies": {strategy: entry}}


EVIDENCE = {"feature_quality": 0.5, "scarcity": 0.5}


@pytest.fixture
def task():
    return fake_task()


def test_distance_is_standardised_and_nearest_keeps_the_data_kind() -> None:
    recs = [record("far", 0.9, {}), record("near", 0.55, {}), record("img", 0.5, {}, kind="images"),
            record("none", 0.5, {})]
    recs[3]["evidence"] = {"other": 1.0}  # shares no value with the task: no distance
    five = [*recs[:2], *(record(f"r{i}", q, {}) for i, q in enumerate((0.1, 0.3, 0.7)))]
    d = distances(EVIDENCE, five)
    sd = float(np.std([0.9, 0.55, 0.1, 0.3, 0.7]))
    # feature_quality over five records: standardised by their sd; scarcity has no spread (sd 1) and no difference
    assert d[0] == pytest.approx(np.sqrt(((0.4 / sd) ** 2 + 0) / 2))
    assert d[1] == pytest.approx(np.sqrt(((0.05 / sd) ** 2 + 0) / 2))
    # two records show no real spread: differences count as they are (sd 1), not blown up by a spread of 0.175
    assert distances(EVIDENCE, recs[:2]) == pytest.approx([np.sqrt(0.4 ** 2 / 2), np.sqrt(0.05 ** 2 / 2)])
    assert [r["id"] for _, r in nearest(EVIDENCE, "features", recs[:2])] == ["near", "far"]
    assert [r["id"] for _, r in nearest(EVIDENCE, "features", recs)] == ["near", "far"]


def test_plan_takes_the_nearest_new_valid_settings_of_the_same_strategy(task) -> None:
    recs = [
        record("nearest-default", 0.5, {"lr": 0.01, "decay_on": False, "epochs": 9, "train_rows": 4}),
        record("near-out-of-range", 0.51, {"lr": 5.0, "decay_on": False}),
        record("near-other-space", 0.52, {"lr": 0.003, "momentum": 0.9}),
        record("near-other-strategy", 0.52, {"lr": 0.002}, strategy="other"),
        record("near-failed", 0.52, {"lr": 0.002}, val=None),
        record("second", 0.6, {"lr": 0.003, "epochs": 12}),  # decay_on missing: the default (False)
        record("second-twin", 0.61, {"lr": 0.003, "decay_on": False}),
        record("third", 0.7, {"lr": 0.02, "decay_on": True, "decay": 1e-4}),
        record("fourth", 0.8, {"lr": 0.05, "decay_on": False}),
    ]
    warm = plan([Knobs()], task, EVIDENCE, "features", recs, max_distance=math.inf)["knobs"]
    assert [w.record for w in warm] == ["second", "third"]
    assert warm[0].params == {"decay_on": False, "lr": 0.003}
    assert warm[1].params == {"decay_on": True, "lr": 0.02, "decay": 1e-4}
    assert warm[0].distance < warm[1].distance
    assert plan([Knobs()], task, EVIDENCE, "images", recs, max_distance=math.inf) == {}
    assert plan([Knobs()], task, EVIDENCE, "features", recs, per_study=1,
                max_distance=math.inf)["knobs"][0].record == "second"


def test_replay_refuses_a_setting_the_space_cannot_take(task) -> None:
    assert replay(Knobs(), task, {"lr": 0.01, "decay_on": True}) is None  # decay suggested, not given
    assert replay(Knobs(), task, {"lr": 0.01, "decay_on": "maybe"}) is None  # not a choice
    assert replay(Knobs(), task, {"lr": 0.01, "decay_on": False}) == {"decay_on": False, "lr": 0.01}


def spread(rid: str, quality: float, params: dict) -> list[dict]:
    """``record(rid, quality, params)`` among eight fillers (no setting of ``knobs``) whose feature quality spreads
    evenly over [0, 1], so that the standardised distance of ``quality`` to the task's 0.5 is meaningful."""
    fillers = [record(f"filler-{i}", i / 7, {"lr": 0.001}, strategy="other") for i in range(8)]
    return [record(rid, quality, params), *fillers]


def test_setting_distance_is_normalised_by_each_range(task) -> None:
    dists = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
             "decay_on": optuna.distributions.CategoricalDistribution([False, True])}
    a = {"lr": 0.01, "decay_on": False}
    # lr x 10 is one decade of the three the range spans
    assert setting_distance(a, {"lr": 0.1, "decay_on": False}, dists) == pytest.approx(1 / 3)
    assert setting_distance(a, {"lr": 0.01, "decay_on": True}, dists) == pytest.approx(1.0)
    assert setting_distance(a, {**a, "decay": 1e-4}, dists) == pytest.approx(1.0)  # a conditional knob more
    assert setting_distance(a, dict(a), dists) == 0.0


def test_a_near_duplicate_of_the_default_or_of_a_kept_setting_is_dropped(task) -> None:
    # the default is lr 0.01, decay off; lr 0.0105 is 0.007 of the log range away: the same trial
    recs = [record("twin-of-default", 0.5, {"lr": 0.0105, "decay_on": False}),
            record("kept", 0.51, {"lr": 0.002, "decay_on": False}),
            record("twin-of-kept", 0.52, {"lr": 0.0021, "decay_on": False}),
            record("new", 0.53, {"lr": 0.03, "decay_on": False})]
    warm = plan([Knobs()], task, EVIDENCE, "features", recs, max_distance=math.inf)["knobs"]
    assert [w.record for w in warm] == ["kept", "new"]
    # with no tolerance only exact repeats are dropped
    exact = plan([Knobs()], task, EVIDENCE, "features", recs, max_distance=math.inf, near=0.0)["knobs"]
    assert [w.record for w in exact] == ["twin-of-default", "kept"]
    assert NEAR > 0.007 and setting_distance({"lr": 0.01}, {"lr": 0.0105}, {}) == 1.0  # no range: unequal


def test_a_distance_cutoff_ignores_far_tasks_and_none_is_the_default(task) -> None:
    near = spread("near", 0.52, {"lr": 0.003, "decay_on": False})
    far = spread("far", 1.0, {"lr": 0.003, "decay_on": False})
    (d_near, _), = [x for x in nearest(EVIDENCE, "features", near) if x[1]["id"] == "near"]
    (d_far, _), = [x for x in nearest(EVIDENCE, "features", far) if x[1]["id"] == "far"]
    assert d_near < 1.0 < d_far
    assert [w.record for w in plan([Knobs()], task, EVIDENCE, "features", near, max_distance=1.0)["knobs"]] == [
        "near"]
    assert plan([Knobs()], task, EVIDENCE, "features", far, max_distance=1.0) == {}
    assert MAX_DISTANCE == math.inf  # by default the nearest record is tried however far (measured: module doc)
    assert plan([Knobs()], task, EVIDENCE, "features", far)["knobs"][0].record == "far"


def test_settings_are_planned_nearest_first_within_the_distance(task) -> None:
    recs = [record("second", 0.56, {"lr": 0.05, "decay_on": False}),
            record("first", 0.5, {"lr": 0.003, "decay_on": False}),
            *[record(f"filler-{i}", i / 7, {"lr": 0.001}, strategy="other") for i in range(8)]]
    warm = plan([Knobs()], task, EVIDENCE, "features", recs)["knobs"]
    assert [w.record for w in warm] == ["first", "second"]
    assert warm[0].distance < warm[1].distance <= MAX_DISTANCE


def _state(tmp_path, task, strategy, budget, warm=()):
    storage = open_storage(str(tmp_path / "optuna.journal"))
    study = make_study(storage, "run", strategy, task, seed=0)
    return SearchState(strategy, study, raise_budget(study, budget), warm_start=list(warm))


def test_a_new_study_tries_default_then_warm_settings_then_tpe(tmp_path, task) -> None:
    recs = [record("a", 0.55, {"lr": 10 ** -2.5, "decay_on": False}), record("b", 0.6, {"lr": 0.05})]
    strategy = Knobs()
    warm = plan([strategy], task, EVIDENCE, "features", recs, max_distance=math.inf)["knobs"]
    s = _state(tmp_path, task, strategy, 4, warm)
    assert run_search([s], task, race=False)
    trials = sorted(s.study.trials, key=lambda t: t.number)
    assert trials[0].params == {"decay_on": False, "lr": 0.01}
    assert trials[1].params["lr"] == pytest.approx(10 ** -2.5) and trials[1].user_attrs[TRIAL_ATTR] == "a"
    assert trials[2].params["lr"] == pytest.approx(0.05) and trials[2].user_attrs[TRIAL_ATTR] == "b"
    assert TRIAL_ATTR not in trials[3].user_attrs
    assert warm_started(s.study) == ["a", "b"]
    assert max(t.value for t in trials) == trials[1].value  # the past best setting is this task's best here
    assert [f["epochs"] for f in strategy.fits] == [5, 5, 5, 5]  # the record's fixed values are not replayed


def test_a_resumed_study_is_never_warm_started(tmp_path, task) -> None:
    s = _state(tmp_path, task, Knobs(), 2)
    run_search([s], task, race=False)
    warm = plan([Knobs()], task, EVIDENCE, "features", [record("a", 0.55, {"lr": 0.003})])["knobs"]
    again = _state(tmp_path, task, Knobs(), 4, warm)
    run_search([again], task, race=False)
    assert warm_started(again.study) == []
    assert all(TRIAL_ATTR not in t.user_attrs for t in again.study.trials)


def test_load_records_keeps_the_latest_per_fingerprint_and_none_reads_nothing(tmp_path) -> None:
    store = FolderMetaStore(tmp_path / "store")
    store.append({"id": "old", "fingerprint": "f1"})
    store.append({"id": "other", "fingerprint": "f2"})
    store.append({"id": "new", "fingerprint": "f1"})
    assert [r["id"] for r in load_records(str(tmp_path / "store"))] == ["new", "other"]
    assert load_records("none") == []
    assert load_records(str(tmp_path / "missing")) == []


def test_a_run_warm_starts_from_its_store_and_says_so(tmp_path) -> None:
    """A real run with a store holding the shipped harness record of the same demo: the record's l2sp setting
    is tried second, and the JSON and Markdown reports name the record."""
    import json

    from advisor.advice.learned import SHIPPED_MODEL
    from advisor.models.inputs import InputRequest
    from advisor.pipeline import RecommendOptions, recommend
    from advisor.plugin.registry import build_registry
    from advisor.report.render import render_markdown

    shipped = {r["id"]: r for r in json.loads(SHIPPED_MODEL.read_text())["records"]}
    FolderMetaStore(tmp_path / "store").append(shipped["harness:digits-shift"])
    opts = RecommendOptions(strategies="l2sp", trials=2, max_epochs=2, n_seeds=1, run_dir=str(tmp_path / "run"),
                            meta_store=str(tmp_path / "store"), threads=1)
    doc = recommend(InputRequest(demo="digits-shift"), opts, build_registry(third_party=False))
    rows = {r["strategy"]: r for r in doc["strategies"]}
    assert rows["l2sp"]["warm_start"] == ["harness:digits-shift"]
    assert "Warm start" in render_markdown(doc) and "l2sp from harness:digits-shift" in render_markdown(doc)
    stored = FolderMetaStore(tmp_path / "store").records()
    assert stored[-1]["id"] == doc["run"]["meta_record"]  # the run still appends its own record
