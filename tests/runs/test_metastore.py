"""The meta-store: every finished run appends one record that pairs the advice's evidence with the outcomes."""

from __future__ import annotations

import json

import pytest

from advisor.models.inputs import InputRequest
from advisor.pipeline import RecommendOptions, recommend
from advisor.plugin.registry import build_registry
from advisor.runs.metastore import (
    FolderMetaStore,
    MetaStoreError,
    RdbMetaStore,
    default_meta_store,
    load_records,
    open_meta_store,
    records_from_runs,
    resolve_meta_store,
)

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
    records = FolderMetaStore(root / "store").records()
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
    # the hand-set rule's own scores, whatever model ranked: what a learned model is fitted and measured against
    assert rec["hand_set_scores"] == {r["strategy"]: r["hand_set_score"] for r in doc["advice"]["ranking"]}
    assert rec["prior_ranking"] == [r["strategy"] for r in doc["advice"]["ranking"]]


def test_run_folders_rebuild_the_same_outcomes(finished) -> None:
    root, doc = finished
    (rec,) = records_from_runs(root / "runs")
    stored = FolderMetaStore(root / "store").records()[0]
    assert rec["id"] == f"run:{doc['run']['run']}"
    assert rec["strategies"] == {k: {**v, "role": None} for k, v in stored["strategies"].items()}
    assert rec["evidence"] == stored["evidence"] and rec["data_kind"] == "images"


def test_no_store_and_quick_advice_only_append_nothing(tmp_path) -> None:
    store = tmp_path / "store"
    doc = recommend(InputRequest(demo="digits-shift"),
                    RecommendOptions(trials=0, run_dir=str(tmp_path / "r"), meta_store=str(store)), REG)
    assert not FolderMetaStore(store).records()  # no strategy ran: nothing to learn from
    assert "meta_record" not in doc["run"]
    assert resolve_meta_store("none") is None and resolve_meta_store("NONE") is None


def test_default_store_is_under_the_user_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.delenv("TRANSFER_ADVISOR_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_meta_store() == tmp_path / "transfer-advisor" / "meta" == resolve_meta_store(None)
    monkeypatch.setenv("TRANSFER_ADVISOR_CACHE", str(tmp_path / "c"))
    assert default_meta_store() == tmp_path / "c" / "meta"


def test_append_gives_ids_and_skips_a_damaged_line(tmp_path) -> None:
    store = FolderMetaStore(tmp_path)
    first = store.append({"evidence": {"a": 1.0}})
    with open(store.file, "a") as fh:
        fh.write('{"id": "half-writ')  # a crash mid-write
    with open(store.file, "a") as fh:
        fh.write("\n")
    second = store.append({"id": "given", "evidence": {}})
    assert first != second == "given"
    assert [r["id"] for r in store.records()] == [first, "given"]
    assert json.loads(store.file.read_text().splitlines()[0])["schema"] == 1


# --------------------------------------------------------------------------- the run's database


def test_store_rules_follow_meta_store_then_storage(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    assert open_meta_store("none", url) is None and open_meta_store("None", None) is None
    by_storage = open_meta_store(None, url)
    assert isinstance(by_storage, RdbMetaStore) and by_storage.url == url
    assert open_meta_store(None, str(tmp_path / "optuna.journal")) == FolderMetaStore(default_meta_store())
    assert open_meta_store(str(tmp_path / "f"), url) == FolderMetaStore(tmp_path / "f")  # explicit wins
    other = f"sqlite:///{tmp_path / 'other.db'}"
    explicit = open_meta_store(other, url)
    assert isinstance(explicit, RdbMetaStore) and explicit.url == other


def test_rdb_store_appends_reads_in_order_and_replaces_a_repeated_id(tmp_path) -> None:
    import sqlalchemy as sa

    db = tmp_path / "runs.db"
    store = RdbMetaStore(f"sqlite:///{db}")
    first = store.append({"fingerprint": "f1", "evidence": {"a": 1.0}})
    store.append({"id": "given", "fingerprint": "f2", "evidence": {"a": 2.0}})
    store.append({"id": first, "fingerprint": "f1", "evidence": {"a": 3.0}})  # same id: replaced
    recs = RdbMetaStore(f"sqlite:///{db}").records()
    assert [r["id"] for r in recs] == ["given", first] and recs[1]["evidence"] == {"a": 3.0}
    assert recs[0]["schema"] == 1
    with sa.create_engine(f"sqlite:///{db}").connect() as conn:
        cols = [c["name"] for c in sa.inspect(conn).get_columns("advisor_meta_records")]
        fps = conn.execute(sa.text("SELECT fingerprint FROM advisor_meta_records ORDER BY created")).scalars().all()
    assert cols == ["id", "fingerprint", "created", "record"] and fps == ["f2", "f1"]


def test_reading_a_missing_database_creates_nothing_and_fails(tmp_path) -> None:
    store = RdbMetaStore(f"sqlite:///{tmp_path / 'absent.db'}")
    with pytest.raises(MetaStoreError, match="no such database file"):
        store.records()
    assert not (tmp_path / "absent.db").exists()
    assert load_records(None, f"sqlite:///{tmp_path / 'absent.db'}") == []  # a run reads nothing, never fails


def test_a_password_never_shows_in_a_store_error(tmp_path) -> None:
    store = RdbMetaStore("postgresql://ann:s3cretpw@127.0.0.1:1/nodb?connect_timeout=1")
    assert store.shown == "postgresql://ann:***@127.0.0.1:1/nodb?connect_timeout=1"
    with pytest.raises(MetaStoreError) as err:
        store.append({"evidence": {}})
    assert "s3cretpw" not in str(err.value) and "ann:***@" in str(err.value)
    assert len(str(err.value).splitlines()) == 1


@pytest.fixture(scope="module")
def sqlite_run(tmp_path_factory):
    """A small real run on an SQLite storage without --meta-store, whose database already holds the shipped
    harness record of the same demo (as an earlier run's record)."""
    from advisor.advice.learned import SHIPPED_MODEL

    root = tmp_path_factory.mktemp("rdb")
    url = f"sqlite:///{root / 'optuna.db'}"
    shipped = {r["id"]: r for r in json.loads(SHIPPED_MODEL.read_text())["records"]}
    RdbMetaStore(url).append(shipped["harness:digits-shift"])
    opts = RecommendOptions(strategies="l2sp", trials=1, max_epochs=2, n_seeds=1, storage=url, run_name="rdb",
                            run_dir=str(root / "run"), threads=1)
    return url, recommend(InputRequest(demo="digits-shift"), opts, REG)


def test_a_run_on_an_rdb_storage_appends_to_its_database(sqlite_run) -> None:
    url, doc = sqlite_run
    recs = RdbMetaStore(url).records()
    assert [r["id"] for r in recs] == ["harness:digits-shift", doc["run"]["meta_record"]]
    assert doc["run"]["meta_store"] == url and "meta_record_error" not in doc["run"]
    rows = {r["strategy"]: r for r in doc["strategies"]}
    assert recs[1]["strategies"]["l2sp"]["val_score"] == rows["l2sp"]["val_score"]
    assert recs[1]["fingerprint"] == doc["run"]["fingerprint"]
    assert not FolderMetaStore(default_meta_store()).records()  # the user cache's folder is left alone


def test_runs_on_the_database_warm_start_from_its_records(sqlite_run) -> None:
    url, doc = sqlite_run
    rows = {r["strategy"]: r for r in doc["strategies"]}
    assert rows["l2sp"]["warm_start"] == ["harness:digits-shift"]  # read from the table, not a folder
    assert [r["id"] for r in load_records(None, url)] == ["harness:digits-shift", doc["run"]["meta_record"]]
    assert load_records("none", url) == []


def test_an_unwritable_store_is_said_in_the_report_not_raised(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    opts = RecommendOptions(strategies="l2sp", trials=1, max_epochs=1, n_seeds=1, run_dir=str(tmp_path / "r"),
                            meta_store=str(blocker / "store"), threads=1)
    doc = recommend(InputRequest(demo="digits-shift"), opts, REG)
    assert doc["run"]["meta_record"] is None and "cannot write meta-store" in doc["run"]["meta_record_error"]
    assert any("meta-store record was not written" in n for n in doc["notes"])
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["run"]["meta_record_error"] == doc["run"]["meta_record_error"]
    assert "meta-store record was not written" in (tmp_path / "r" / "report.md").read_text()


def test_an_unreadable_store_costs_the_warm_start_and_the_report_says_so(tmp_path) -> None:
    store = tmp_path / "store"
    (store / "records.jsonl").mkdir(parents=True)  # a folder where the records file should be: unreadable
    opts = RecommendOptions(strategies="l2sp", trials=1, max_epochs=1, n_seeds=1, run_dir=str(tmp_path / "r"),
                            meta_store=str(store), threads=1)
    doc = recommend(InputRequest(demo="digits-shift"), opts, REG)
    assert doc["recommendation"] is not None  # the run went on
    assert any(n.startswith("no warm start: the meta-store could not be read") for n in doc["notes"])
