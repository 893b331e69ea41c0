"""Run directories and Optuna storages: where a run's config, trials and reports live.

A run directory holds ``config.json`` (the task description and its fingerprint), the
default journal-file storage ``optuna.journal``, the feature cache ``cache/``,
``report.json``, ``report.md`` and exported models. ``--storage`` may instead name an Optuna
RDB URL (``sqlite:///...``, ``postgresql://...``) or a journal file path.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.errors import InputError

JOURNAL_NAME = "optuna.journal"
CONFIG_NAME = "config.json"
DEFAULT_RUNS_DIR = "advisor-runs"


def mask_url(url: str) -> str:
    """Hide a password in a storage URL (``user:***@host``)."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


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


def is_rdb_url(storage: str) -> bool:
    return "://" in storage


@dataclass
class RunPaths:
    """Where one run keeps its files."""

    dir: Path
    storage: str  # an RDB URL or a journal file path

    @property
    def config(self) -> Path:
        return self.dir / CONFIG_NAME

    @property
    def cache(self) -> Path:
        return self.dir / "cache"

    @property
    def report_json(self) -> Path:
        return self.dir / "report.json"

    @property
    def report_md(self) -> Path:
        return self.dir / "report.md"

    @property
    def shown_storage(self) -> str:
        return mask_url(self.storage)


def run_paths(run_dir: str | Path, storage: str | None) -> RunPaths:
    """Create the run directory and decide its storage (default: a journal file inside it)."""
    d = Path(run_dir)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create run directory {d}: {exc.strerror}") from exc
    return RunPaths(d, storage or str(d / JOURNAL_NAME))


def open_storage(storage: str, heartbeat: bool = True) -> Any:
    """An Optuna storage for a journal file path or an RDB URL; one-line error if unusable."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if not is_rdb_url(storage):
        path = Path(storage)
        if path.exists() and path.is_dir():
            raise InputError(f"--storage {storage} is a directory; give a journal file path or a URL")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path)))
        except OSError as exc:
            raise InputError(f"cannot open journal storage {storage}: {exc}") from exc
    kwargs: dict[str, Any] = {}
    if heartbeat and not storage.startswith("sqlite"):
        from optuna.storages import RetryFailedTrialCallback

        interval, grace = heartbeat_settings()
        kwargs = {
            "heartbeat_interval": interval,
            "grace_period": grace,
        }
        # Optuna 4.9 renamed the callback that retries trials whose heartbeat expired.
        params = inspect.signature(optuna.storages.RDBStorage).parameters
        key = "heartbeat_stale_trial_callback"
        key = key if key in params else "failed_trial_callback"
        kwargs[key] = RetryFailedTrialCallback(max_retry=2)
    try:
        return optuna.storages.RDBStorage(storage, engine_kwargs={"pool_pre_ping": True}, **kwargs)
    except Exception as exc:  # SQLAlchemy raises many kinds; all mean "unusable storage"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"cannot open storage {mask_url(storage)}: {first}") from exc


def write_json(path: Path, doc: Any) -> None:
    """Write JSON atomically (a reader never sees half a file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{path} not found") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
