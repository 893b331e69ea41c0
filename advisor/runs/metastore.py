"""The meta-store: one record per finished run, so the quick advice can learn how to transfer from past runs.

A record pairs what the advice saw before any training (its evidence vector, the data kind and sizes, the
source and target domains' names and fingerprints) with what happened (each strategy's validation score and best
setting, and the verdict's test outcome). Records are JSON lines in ``records.jsonl`` inside a folder; each has
an ``id``. ``advisor recommend --meta-store PATH|none`` chooses the folder (default ``default_meta_store()``,
under the user cache); tests and the bench always pass a temporary folder or ``none``.

``advisor advice fit`` reads records from a store (``MetaStore.records``) or rebuilds them from run folders
(``records_from_runs``: each run's ``report.json`` and ``config.json``).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECORD_SCHEMA = 1
RECORDS_FILE = "records.jsonl"
#: ``--meta-store none`` (any case) turns the store off.
OFF = "none"


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
    """The store folder for ``--meta-store`` (None: the default folder; ``none``: no store)."""
    if value is None:
        return default_meta_store()
    if value.strip().lower() == OFF:
        return None
    return Path(value).expanduser()


@dataclass
class MetaStore:
    """Records as JSON lines in ``folder/records.jsonl``; appending is one write of one line."""

    folder: Path

    @property
    def file(self) -> Path:
        return Path(self.folder) / RECORDS_FILE

    def append(self, record: dict[str, Any]) -> str:
        """Add ``record`` (an ``id`` is given if it has none) and return its id."""
        record = {"schema": RECORD_SCHEMA, **record}
        record.setdefault("id", new_id())
        Path(self.folder).mkdir(parents=True, exist_ok=True)
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with open(self.file, "a", encoding="utf-8") as fh:
            fh.write(line)
        return str(record["id"])

    def records(self) -> list[dict[str, Any]]:
        """Every readable record, oldest first (a damaged line, e.g. a crash mid-write, is skipped)."""
        if not self.file.exists():
            return []
        out = []
        for line in self.file.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and "id" in rec:
                out.append(rec)
        return out


def load_records(store: str | None) -> list[dict[str, Any]]:
    """The records of the ``--meta-store`` folder (``none``: no records; an unreadable store: none, since a run
    never fails for its meta-store), one per run fingerprint (the latest)."""
    folder = resolve_meta_store(store)
    if folder is None:
        return []
    try:
        records = MetaStore(folder).records()
    except (OSError, UnicodeDecodeError):
        return []
    return dedupe(records)


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


def record_run(store: str | None, doc: dict[str, Any], inputs: Any, request: Any, strategies: list[Any]
               ) -> str | None:
    """Append the run's record to the ``--meta-store`` folder; its id, or None (no store, nothing measured,
    or the folder not writable: a run never fails for its meta-store)."""
    from dataclasses import asdict

    folder = resolve_meta_store(store)
    if folder is None:
        return None
    sizes: dict[str, Any] = {**sizes_of(inputs), "data_kind": inputs.splits.train.kind}
    record = run_record(doc, sizes, asdict(request), {s.name: getattr(s, "role", None) for s in strategies})
    if record is None:
        return None
    try:
        return MetaStore(folder).append(record)
    except OSError:
        return None


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
