"""Optuna storages and run files: opening a journal or a database, worker identity, JSON files.

A run directory holds ``config.json`` (the task description and its fingerprint), the
default journal-file storage ``optuna.journal``, the feature cache ``cache/``,
``report.json``, ``report.md`` and exported models. ``--storage`` may instead name an Optuna
RDB URL (``sqlite:///...``, ``postgresql://...``) or a journal file path. Where a run lives is
decided by ``advisor.runs.location.RunLocation``.
"""

from __future__ import annotations

import inspect
import json
import os
import socket
import warnings
from pathlib import Path
from typing import Any

from advisor.errors import InputError, first_line
from advisor.runs.files import atomic_write_text, repair_journal
from advisor.runs.location import CONFIG_NAME, DEFAULT_RUNS_DIR, JOURNAL_NAME, connect_url, is_rdb_url, mask_url, scrub

__all__ = ["CONFIG_NAME", "DEFAULT_RUNS_DIR", "JOURNAL_NAME", "open_storage", "read_json", "write_json"]

#: Names this machine in trial ``worker`` attributes; set it where hostnames repeat across machines
#: (containers started with the same ``--hostname``), or a live trial elsewhere could be taken for dead.
WORKER_HOST_ENV = "TRANSFER_ADVISOR_WORKER_HOST"
#: Seconds without a heartbeat after which an RDB trial is failed and retried (default 40).
HEARTBEAT_GRACE_ENV = "TRANSFER_ADVISOR_HEARTBEAT_GRACE"


def worker_host() -> str:
    """This machine's name for dead-worker checks: ``$TRANSFER_ADVISOR_WORKER_HOST`` or the hostname."""
    return os.environ.get(WORKER_HOST_ENV) or socket.gethostname()


def worker_id() -> str:
    """``host:pid``, recorded on every trial a process runs."""
    return f"{worker_host()}:{os.getpid()}"


def heartbeat_settings() -> tuple[int, int]:
    """(heartbeat interval, grace period) in seconds; the grace period comes from the environment."""
    raw = os.environ.get(HEARTBEAT_GRACE_ENV, "40")
    try:
        grace = int(raw)
    except ValueError as exc:
        raise InputError(f"{HEARTBEAT_GRACE_ENV} must be a whole number of seconds, not {raw!r}") from exc
    if grace < 2:
        raise InputError(f"{HEARTBEAT_GRACE_ENV} must be at least 2 seconds, not {grace}")
    return max(1, min(10, grace // 3)), grace


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (signal 0 probes without sending)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def open_storage(storage: str, heartbeat: bool = True) -> Any:
    """An Optuna storage for a journal file path or an RDB URL; one-line error if unusable.

    A journal's torn last line is repaired first (``advisor.runs.files.repair_journal``); a URL
    connects without masked secrets (``advisor.runs.location.connect_url``).
    """
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if not is_rdb_url(storage):
        path = Path(storage)
        if path.exists() and path.is_dir():
            raise InputError(f"--storage {storage} is a directory; give a journal file path or a URL")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            repair_journal(path)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise InputError(f"cannot open journal storage {storage}: {exc}") from exc
    url = connect_url(storage)
    with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna; a worker's log is not the place
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        kwargs = _heartbeat_kwargs() if heartbeat and not storage.startswith("sqlite") else {}
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs={"pool_pre_ping": True}, **kwargs)
        except Exception as exc:  # SQLAlchemy raises many kinds; all mean "unusable storage"
            raise InputError(f"cannot open storage {mask_url(storage)}: {scrub(first_line(exc))}") from exc


def _heartbeat_kwargs() -> dict[str, Any]:
    """RDBStorage's heartbeat settings and the callback that retries a trial whose heartbeat expired.

    Optuna 4.9 renamed that callback and its argument (the old names warn from 4.9 and go in 6.0); both
    mark the retry with ``failed_trial``.
    """
    import optuna

    interval, grace = heartbeat_settings()
    params = inspect.signature(optuna.storages.RDBStorage).parameters
    key = "heartbeat_stale_trial_callback"
    key = key if key in params else "failed_trial_callback"
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    retry = retry or optuna.storages.RetryFailedTrialCallback
    return {"heartbeat_interval": interval, "grace_period": grace, key: retry(max_retry=2)}


def write_json(path: Path, doc: Any) -> None:
    """Write JSON atomically (a reader never sees half a file; a full disk is one line, exit 1)."""
    atomic_write_text(path, json.dumps(doc, indent=2, default=str) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{path} not found") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
