"""The meta-store: one record per finished run, so the quick advice can learn how to transfer from past runs.

A record pairs what the advice saw before any training (its evidence vector, the data kind and sizes, the
source and target domains' names and fingerprints) with what happened (each strategy's validation score and best
setting, and the verdict's test outcome). Each record has an ``id``. Two stores behind one interface
(``MetaStore``: ``append`` and ``records``):

- ``FolderMetaStore``: JSON lines in ``records.jsonl`` inside a folder;
- ``RdbMetaStore``: the table ``advisor_meta_records(id TEXT PRIMARY KEY, fingerprint TEXT, created TEXT,
  record TEXT (JSON))`` in a database, created with SQLAlchemy next to Optuna's tables and ``advisor_runs``.

``open_meta_store(value, storage)`` applies the rules of ``advisor recommend --meta-store PATH|URL|none``:
``none`` keeps no store; a database URL or a folder is that store; without ``--meta-store`` a run whose
``--storage`` is a database URL keeps its records in that database, any other run in ``default_meta_store()``
(under the user cache). Tests and the bench always pass a temporary folder or ``none``.

``advisor advice fit`` reads records from a store (``MetaStore.records``) or rebuilds them from run folders
(``records_from_runs``: each run's ``report.json`` and ``config.json``). A store that cannot be read or
written never fails a run: the run reads no records, and its report says the record was not written.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.errors import first_line
from advisor.runs.location import connect_url, ensure_tables, is_rdb_url, mask_url, remember_secrets, scrub

RECORD_SCHEMA = 1
RECORDS_FILE = "records.jsonl"
TABLE = "advisor_meta_records"
#: ``--meta-store none`` (any case) turns the store off.
OFF = "none"


class MetaStoreError(Exception):
    """A store that cannot be opened, read or written (the message is one line, secrets masked)."""


def default_meta_store() -> Path:
    """``$TRANSFER_ADVISOR_CACHE/meta``, else ``$XDG_CACHE_HOME/transfer-advisor/meta``, else ``~/.cache/...``.

    The same cache root as the pretrained source models (``advisor.models.sources.cache_root``), computed here
    without importing torch.
    """
    env = os.environ.get("TRANSFER_ADVISOR_CACHE")
    if env:
        return Path(env).expanduser() / "meta"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "transfer-advisor" / "meta"


def resolve_meta_store(value: str | None) -> Path | None:
    """The store folder for a folder-valued ``--meta-store`` (None: the default folder; ``none``: no store)."""
    if value is None:
        return default_meta_store()
    if value.strip().lower() == OFF:
        return None
    return Path(value).expanduser()


class MetaStore(ABC):
    """Where records are kept: ``append`` one, read them all back (oldest first)."""

    @property
    @abstractmethod
    def shown(self) -> str:
        """The store as it may be printed or written (a URL's secrets masked)."""

    @abstractmethod
    def append(self, record: dict[str, Any]) -> str:
        """Add ``record`` (an ``id`` is given if it has none) and return its id; MetaStoreError on failure."""

    @abstractmethod
    def records(self) -> list[dict[str, Any]]:
        """Every readable record, oldest first; MetaStoreError when the store cannot be read."""


def _stamped(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with the schema version and an id."""
    record = {"schema": RECORD_SCHEMA, **record}
    record.setdefault("id", new_id())
    return record


@dataclass
class FolderMetaStore(MetaStore):
    """Records as JSON lines in ``folder/records.jsonl``; appending is one write of one line."""

    folder: Path

    @property
    def file(self) -> Path:
        return Path(self.folder) / RECORDS_FILE

    @property
    def shown(self) -> str:
        return str(self.folder)

    def append(self, record: dict[str, Any]) -> str:
        record = _stamped(record)
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        try:
            Path(self.folder).mkdir(parents=True, exist_ok=True)
            with open(self.file, "a", encoding="utf-8") as fh:
                fh.write(line)
        except OSError as exc:
            raise MetaStoreError(f"cannot write meta-store {self.folder}: {exc.strerror or exc}") from exc
        return str(record["id"])

    def records(self) -> list[dict[str, Any]]:
        """Every readable record, oldest first (a damaged line, e.g. a crash mid-write, is skipped)."""
        if not self.file.exists():
            return []
        try:
            text = self.file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise MetaStoreError(f"cannot read meta-store {self.file}: {first_line(exc)}") from exc
        out = []
        for line in text.splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "id" in rec:
                out.append(rec)
        return out


class RdbMetaStore(MetaStore):
    """Records in the table ``advisor_meta_records`` of a database (a run's RDB storage, by default).

    Nothing connects until the first ``append`` or ``records``; reading never creates the table (nor an
    SQLite file), so ``advisor advice fit --storage URL`` leaves a database as it found it.
    """

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        remember_secrets(url)
        self.url = url
        self.meta = sa.MetaData()
        self.table = sa.Table(
            TABLE, self.meta,
            sa.Column("id", sa.Text, primary_key=True),
            sa.Column("fingerprint", sa.Text),
            sa.Column("created", sa.Text, nullable=False),
            sa.Column("record", sa.Text, nullable=False),
        )
        self._engine: Any = None

    @property
    def shown(self) -> str:
        return mask_url(self.url)

    def _fail(self, doing: str, exc: BaseException) -> MetaStoreError:
        return MetaStoreError(f"cannot {doing} meta-store {self.shown}: {scrub(first_line(exc))}")

    def _sqlite_file_missing(self) -> bool:
        """Whether the URL names an SQLite file that does not exist (connecting would create it)."""
        import sqlalchemy as sa

        url = sa.engine.make_url(connect_url(self.url))
        db = url.database or ""
        return url.get_backend_name() == "sqlite" and db not in ("", ":memory:") and not Path(db).exists()

    def _connect(self) -> Any:
        import sqlalchemy as sa
        from sqlalchemy.pool import NullPool

        if self._engine is None:  # no pool: a store is used once or twice per run, connections never linger
            self._engine = sa.create_engine(connect_url(self.url), poolclass=NullPool)
        return self._engine

    def append(self, record: dict[str, Any]) -> str:
        """Add ``record``; a record whose id is already stored replaces it (the latest wins, as in ``dedupe``)."""
        import sqlalchemy as sa

        record = _stamped(record)
        rid = str(record["id"])
        row = {"fingerprint": record.get("fingerprint"), "record": json.dumps(record, sort_keys=True, default=str),
               "created": _now()}
        try:
            engine = self._connect()
            ensure_tables(self.meta, engine)
            try:
                with engine.begin() as conn:
                    conn.execute(self.table.insert().values(id=rid, **row))
            except sa.exc.IntegrityError:
                with engine.begin() as conn:
                    conn.execute(self.table.update().where(self.table.c.id == rid).values(**row))
        except Exception as exc:  # SQLAlchemy and driver errors: all mean "unusable store"
            raise self._fail("write", exc) from exc
        return rid

    def records(self) -> list[dict[str, Any]]:
        """Every record whose JSON parses, oldest first (by the time it was appended, then id)."""
        import sqlalchemy as sa

        try:
            if self._sqlite_file_missing():
                raise MetaStoreError(f"meta-store {self.shown}: no such database file")
            engine = self._connect()
            if not sa.inspect(engine).has_table(TABLE):
                return []
            with engine.connect() as conn:
                rows = conn.execute(sa.select(self.table.c.record)
                                    .order_by(self.table.c.created, self.table.c.id)).all()
        except MetaStoreError:
            raise
        except Exception as exc:
            raise self._fail("read", exc) from exc
        out = []
        for (text,) in rows:
            try:
                rec = json.loads(text)
            except (TypeError, json.JSONDecodeError):
                continue
            if isinstance(rec, dict) and "id" in rec:
                out.append(rec)
        return out


def _now() -> str:
    """The append time, sortable as text to the microsecond (UTC)."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def open_meta_store(value: str | None, storage: str | None = None) -> MetaStore | None:
    """The store of ``--meta-store`` ``value`` for a run whose Optuna storage is ``storage``.

    ``none`` (any case): None, no store. A database URL: that database. A path: that folder. Not given: the
    run's database when ``storage`` is a database URL, else the default folder under the user cache.
    """
    if value is not None and value.strip().lower() == OFF:
        return None
    if value is not None and is_rdb_url(value.strip()):
        return RdbMetaStore(value.strip())
    if value is None and storage and is_rdb_url(storage):
        return RdbMetaStore(storage)
    folder = resolve_meta_store(value)
    assert folder is not None
    return FolderMetaStore(folder)


def read_records(store: str | None, storage: str | None = None) -> list[dict[str, Any]]:
    """The records of ``open_meta_store(store, storage)``, one per run fingerprint (the latest); none for
    ``none``; ``MetaStoreError`` when the store cannot be read."""
    meta = open_meta_store(store, storage)
    return dedupe(meta.records()) if meta is not None else []


def load_records(store: str | None, storage: str | None = None) -> list[dict[str, Any]]:
    """``read_records``, with none for a store that cannot be read (a run never fails for its meta-store)."""
    try:
        return read_records(store, storage)
    except MetaStoreError:
        return []


def dedupe(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per run fingerprint (the latest: a reopened run measured more), records without one kept."""
    seen: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    for r in records:
        fp = r.get("fingerprint")
        if fp and fp in seen:
            out[seen[fp]] = r
            continue
        if fp:
            seen[fp] = len(out)
        out.append(r)
    return out


def new_id() -> str:
    """A short unique record id."""
    return uuid.uuid4().hex[:12]


def sizes_of(inputs: Any) -> dict[str, int]:
    """Source rows, target train/val rows, classes and labelled train rows per class of resolved inputs."""
    sp = inputs.splits
    classes = max(1, int(sp.train.num_classes))
    return {"source_rows": len(inputs.source) if inputs.source is not None else 0,
            "target_train": len(sp.train), "target_val": len(sp.val), "classes": classes,
            "labels_per_class": round(len(sp.train) / classes, 2)}


def _domain_name(path: str | None, fallback: str) -> str:
    return Path(path).stem if path else fallback


def run_record(doc: dict[str, Any], sizes: dict[str, int] | None, request: dict[str, Any],
               roles: dict[str, str]) -> dict[str, Any] | None:
    """The record of a finished run's report ``doc`` (None when no strategy has a validation score).

    ``request`` is the run's ``InputRequest`` as a dict (it names the domains); ``roles`` maps strategy names to
    their declared role.
    """
    rows = [r for r in doc.get("strategies", []) if r.get("val_score") is not None]
    if not rows:
        return None
    run = doc.get("run", {})
    fps = run.get("data_fingerprints", {})
    demo = request.get("demo")
    target_fp = "+".join(fps.get(k, "")[:8] for k in ("target_train", "target_val", "target_test"))
    rec = doc.get("recommendation") or {}
    return {
        "id": new_id(), "origin": "run", "run": run.get("run"), "fingerprint": run.get("fingerprint"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "score": doc.get("score"), "complete": doc.get("complete"),
        "data_kind": (sizes or {}).get("data_kind") or _kind(doc),
        "evidence": doc.get("advice", {}).get("evidence", {}),
        "sizes": {k: v for k, v in (sizes or {}).items() if k != "data_kind"},
        "domains": {
            "source": {"name": _domain_name(request.get("source"), f"{demo}/source" if demo else "source-model"),
                       "fingerprint": fps.get("source", fps.get("model", ""))},
            "target": {"name": _domain_name(request.get("target"), f"{demo}/target" if demo else "target"),
                       "fingerprint": target_fp},
        },
        "prior_ranking": [r["strategy"] for r in doc.get("advice", {}).get("ranking", [])],
        "hand_set_scores": {r["strategy"]: r["hand_set_score"] for r in doc.get("advice", {}).get("ranking", [])
                            if r.get("hand_set_score") is not None},
        "strategies": {r["strategy"]: {"family": r.get("family"), "role": roles.get(r["strategy"]),
                                       "val_score": r["val_score"], "params": r.get("params", {}),
                                       "status": r.get("status")} for r in rows},
        "verdict": {"strategy": rec.get("strategy"), "verdict_code": rec.get("verdict_code"),
                    "best_transfer_strategy": rec.get("best_transfer_strategy"),
                    "test_score": rec.get("test_score_mean"), "test_gain": rec.get("test_gain"),
                    "test_gain_ci": rec.get("test_gain_ci")} if rec else None,
    }


def _kind(doc: dict[str, Any]) -> str | None:
    """The data kind from the report's input lines (``images`` or ``features``), when the sizes lack it."""
    text = " ".join(doc.get("inputs", []))
    for kind, word in (("images", "images"), ("features", "rows")):
        if f" {word}," in text:
            return kind
    return None


@dataclass
class RecordOutcome:
    """What became of a finished run's record: its id, the store it went to, or why it was not written."""

    id: str | None
    store: str | None  # the store as shown (secrets masked); None with ``--meta-store none``
    error: str | None = None  # set when the store failed: the report says the record was not written

    def run_fields(self) -> dict[str, Any]:
        """The report's ``run`` fields: ``meta_record`` (id or null), ``meta_store``, ``meta_record_error``."""
        fields: dict[str, Any] = {"meta_record": self.id, "meta_store": self.store or OFF}
        if self.error:
            fields["meta_record_error"] = self.error
        return fields

    @property
    def note(self) -> str | None:
        """The report note for a record that could not be written."""
        return f"this run's meta-store record was not written ({self.error})" if self.error else None


def record_run(store: str | None, doc: dict[str, Any], inputs: Any, request: Any, strategies: list[Any],
               storage: str | None = None) -> RecordOutcome:
    """Append the run's record to ``open_meta_store(store, storage)``. The id is None when there is no store
    or nothing was measured; a store that fails sets ``error`` instead of failing the run."""
    from dataclasses import asdict

    try:
        meta = open_meta_store(store, storage)
    except Exception as exc:  # e.g. a URL SQLAlchemy cannot parse
        return RecordOutcome(None, mask_url(store or storage or ""), scrub(first_line(exc)))
    if meta is None:
        return RecordOutcome(None, None)
    sizes: dict[str, Any] = {**sizes_of(inputs), "data_kind": inputs.splits.train.kind}
    record = run_record(doc, sizes, asdict(request), {s.name: getattr(s, "role", None) for s in strategies})
    if record is None:
        return RecordOutcome(None, meta.shown)
    try:
        return RecordOutcome(meta.append(record), meta.shown)
    except MetaStoreError as exc:
        return RecordOutcome(None, meta.shown, str(exc))


def records_from_runs(folder: str | Path) -> list[dict[str, Any]]:
    """Records rebuilt from every run folder under ``folder`` (its ``report.json`` and ``config.json``).

    Sizes other than what the report states are not stored in a run folder, so these records carry the
    evidence, the strategies' scores and the verdict only; the id is ``run:<run name>``.
    """
    out = []
    for report in sorted(Path(folder).rglob("report.json")):
        try:
            doc = json.loads(report.read_text())
            config = json.loads((report.parent / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        rec = run_record(doc, None, config.get("request", {}), {})
        if rec is not None:
            rec["id"] = f"run:{rec.get('run') or report.parent.name}"
            rec["origin"] = "run-folder"
            out.append(rec)
    return out
