"""The meta-store: every finished run appends one record that pairs the advice's evidence with the outcomes."""

from __future__ import annotations

import json

import pytest

from advisor.models.inputs import InputRequest
from advisor.pipeline import RecommendOptions, recommend
from advisor.plugin.registry import build_registry
from advisor.runs.metastore import MetaStore, default_meta_store, records_from_runs, resolve_meta_store

REG = build_registry(third_party=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One small real run (one transfer strategy, one trial, one seed) with an explicit store."""
    root = tmp_path_factory.mktemp("meta")
    opts = RecommendOptions(strategies="l2sp", trials=1, max_epochs=2, n_seeds=1, run_dir=str(root / "runs" / "a"),
                            meta_store=str(root / "store"), threads=1)
    doc = recommend(InputRequest(demo="digits-shift"), opts, REG)
    return root, doc


def test_a_finished_run_appends_its_record(finished) -> None:
    root, doc = finished
    records = MetaStore(root / "store").records()
    assert len(records) == 1
    rec = records[0]
    assert rec["id"] == doc["run"]["meta_record"]
    assert rec["evidence"] == doc["advice"]["evidence"] and rec["data_kind"] == "images"
    assert rec["sizes"]["target_train"] == 20 and rec["sizes"]["classes"] == 10 and rec["sizes"]["source_rows"] > 0
    assert rec["domains"]["source"]["name"] == "digits-shift/source"
    assert rec["domains"]["source"]["fingerprint"] == doc["run"]["data_fingerprints"]["source"]
    rows = {r["strategy"]: r for r in doc["strategies"]}
    assert set(rec["strategies"]) == {k for k, r in rows.items() if r["val_score"] is not None}
    assert rec["strategies"]["l2sp"]["val_score"] == rows["l2sp"]["val_score"]
    assert rec["strategies"]["l2sp"]["params"] == rows["l2sp"]["params"]
    assert rec["strategies"]["l2sp"]["role"] == "transfer"
    assert rec["verdict"]["test_score"] == doc["recommendation"]["test_score_mean"]
    assert rec["verdict"]["verdict_code"] == doc["recommendation"]["verdict_code"]


def test_run_folders_rebuild_the_same_outcomes(finished) -> None:
    root, doc = finished
    (rec,) = records_from_runs(root / "runs")
    stored = MetaStore(root / "store").records()[0]
    assert rec["id"] == f"run:{doc['run']['run']}"
    assert rec["strategies"] == {k: {**v, "role": None} for k, v in stored["strategies"].items()}
    assert rec["evidence"] == stored["evidence"] and rec["data_kind"] == "images"


def test_no_store_and_quick_advice_only_append_nothing(tmp_path) -> None:
    store = tmp_path / "store"
    doc = recommend(InputRequest(demo="digits-shift"),
                    RecommendOptions(trials=0, run_dir=str(tmp_path / "r"), meta_store=str(store)), REG)
    assert not MetaStore(store).records()  # no strategy ran: nothing to learn from
    assert "meta_record" not in doc["run"]
    assert resolve_meta_store("none") is None and resolve_meta_store("NONE") is None


def test_default_store_is_under_the_user_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("TRANSFER_ADVISOR_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_meta_store() == tmp_path / "transfer-advisor" / "meta" == resolve_meta_store(None)
    monkeypatch.setenv("TRANSFER_ADVISOR_CACHE", str(tmp_path / "c"))
    assert default_meta_store() == tmp_path / "c" / "meta"


def test_append_gives_ids_and_skips_a_damaged_line(tmp_path) -> None:
    store = MetaStore(tmp_path)
    first = store.append({"evidence": {"a": 1.0}})
    with open(store.file, "a") as fh:
        fh.write('{"id": "half-writ')  # a crash mid-write
    with open(store.file, "a") as fh:
        fh.write("\n")
    second = store.append({"id": "given", "evidence": {}})
    assert first != second == "given"
    assert [r["id"] for r in store.records()] == [first, "given"]
    assert json.loads(store.file.read_text().splitlines()[0])["schema"] == 1
