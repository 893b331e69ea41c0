"""Where a run lives, decided once: its directory, its Optuna storage, its name, and how to show them.

Every command and the dashboard build one ``RunLocation`` from what the user gave (``--run-dir``,
``--storage``, ``--run``) or from a run directory's ``config.json``, and pass it on. It also owns the
credentials rule (issue 15): a storage URL keeps its password in memory only; whatever is written or
shown uses ``mask_url`` (``user:***@host``, ``password=***`` and other secret-looking query parameters).
A masked URL read back from a run directory connects without the secret, so the driver takes the
password from the environment (``PGPASSWORD``, ``~/.pgpass``) unless ``--storage`` gives it again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.errors import InputError

if TYPE_CHECKING:
    from advisor.runs.taskstore import TaskStore

JOURNAL_NAME = "optuna.journal"
CONFIG_NAME = "config.json"
DEFAULT_RUNS_DIR = "advisor-runs"
MASK = "***"
#: Query parameters whose value is a secret (compared case-insensitively).
SECRET_PARAMS = frozenset({"password", "passwd", "pwd", "secret", "token", "key", "sslpassword"})

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_PARAM = re.compile(r"([?&;])([^=&;#]+)=([^&;#]*)")
# Secrets seen in this process's storage URLs: removed from any error line the advisor prints.
_SEEN: set[str] = set()


def is_rdb_url(storage: str) -> bool:
    """Whether ``storage`` is a database URL (``scheme://...``) rather than a journal file path."""
    return bool(_SCHEME.match(storage))


def _split_userinfo(url: str) -> tuple[str, str, str]:
    """(``scheme://``, userinfo, rest) of a URL; userinfo is '' when the URL has none."""
    m = _SCHEME.match(url)
    if not m:
        return "", "", url
    head, tail = m.group(0), url[m.end():]
    end = min((i for i in (tail.find("/"), tail.find("?"), tail.find("#")) if i >= 0), default=len(tail))
    at = tail.rfind("@", 0, end)
    if at < 0:
        return head, "", tail
    return head, tail[:at], tail[at + 1:]


def _is_secret(name: str) -> bool:
    return name.strip().lower() in SECRET_PARAMS


def secrets_of(url: str) -> list[str]:
    """The secret values in a storage URL: the userinfo password and secret query parameters."""
    if not is_rdb_url(url):
        return []
    _, userinfo, rest = _split_userinfo(url)
    found = [userinfo.split(":", 1)[1]] if ":" in userinfo else []
    found += [m.group(3) for m in _PARAM.finditer(rest) if _is_secret(m.group(2))]
    return [s for s in found if s and s != MASK]


def mask_url(url: str) -> str:
    """``url`` as it may be written or shown: the password and secret query values replaced by ``***``."""
    if not is_rdb_url(url):
        return url
    head, userinfo, rest = _split_userinfo(url)
    if ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":" + MASK
    rest = _PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}={MASK}" if _is_secret(m.group(2)) else m.group(0), rest)
    return head + (f"{userinfo}@" if userinfo else "") + rest


def connect_url(url: str) -> str:
    """The URL to hand to the driver: masked secrets dropped (the password then comes from the
    environment), and for SQLite every secret parameter dropped (it has no authentication)."""
    if not is_rdb_url(url):
        return url
    head, userinfo, rest = _split_userinfo(url)
    if userinfo.endswith(":" + MASK):
        userinfo = userinfo[: -len(MASK) - 1]
    sqlite = head.lower().startswith("sqlite")

    path, _, fragment = rest.partition("#")
    path, sep, query = path.partition("?")
    kept = [p for p in re.split(r"[&;]", query) if p and not (
        _is_secret(p.split("=", 1)[0]) and (sqlite or p.split("=", 1)[-1] == MASK))]
    rest = path + (sep + "&".join(kept) if kept else "") + (f"#{fragment}" if fragment else "")
    return head + (f"{userinfo}@" if userinfo else "") + rest


def remember_secrets(url: str) -> None:
    """Note ``url``'s secrets so that ``scrub`` removes them from any message this process prints."""
    from urllib.parse import unquote

    for s in secrets_of(url):
        for form in {s, unquote(s)}:
            if len(form) >= 3:
                _SEEN.add(form)


def scrub(text: str) -> str:
    """``text`` with every storage secret seen in this process replaced by ``***``."""
    for s in sorted(_SEEN, key=len, reverse=True):
        text = text.replace(s, MASK)
    return text


def ensure_tables(meta: Any, engine: Any) -> None:
    """Create ``meta``'s tables that are missing; when another process creates one at the same moment (an
    IntegrityError from the race), check again."""
    import sqlalchemy as sa

    try:
        meta.create_all(engine, checkfirst=True)
    except sa.exc.IntegrityError:
        meta.create_all(engine, checkfirst=True)


@dataclass(frozen=True)
class RunLocation:
    """One run's place: its directory, its storage (journal path or URL, secret kept in memory) and name."""

    dir: Path
    storage: str
    run: str

    @classmethod
    def resolve(cls, run_dir: str | Path | None, storage: str | None, run: str) -> RunLocation:
        """From the user's ``--run-dir`` (default ``advisor-runs/<run>``), ``--storage`` (default the
        journal in the run directory) and the run name. Creates nothing."""
        d = Path(run_dir) if run_dir else Path(DEFAULT_RUNS_DIR) / run
        if storage:
            remember_secrets(storage)
            if not is_rdb_url(storage):
                storage = str(Path(storage).expanduser())
        return cls(d, storage or str(d / JOURNAL_NAME), run)

    @classmethod
    def from_dir(cls, run_dir: str | Path, storage: str | None = None) -> RunLocation:
        """A run directory's location, read from its ``config.json``. The recorded storage is used
        unless ``storage`` is given; a recorded journal that is gone means the directory moved, so
        its own journal is used; a masked URL connects with the password from the environment."""
        from advisor.runs.storage import read_json

        d = Path(run_dir)
        config = d / CONFIG_NAME
        if not config.is_file():
            raise InputError(f"{d} is not a run directory (no {CONFIG_NAME})")
        cfg = read_json(config)
        if not isinstance(cfg, dict) or not cfg.get("run"):
            raise InputError(f"{config} names no run")
        recorded = str(cfg.get("storage") or "")
        if storage:
            remember_secrets(storage)
        elif is_rdb_url(recorded):
            storage = connect_url(recorded)
        elif recorded and Path(recorded).exists():
            storage = recorded
        return cls.resolve(d, storage, str(cfg["run"]))

    @property
    def is_rdb(self) -> bool:
        return is_rdb_url(self.storage)

    @property
    def shown_storage(self) -> str:
        """The storage as it may be printed or written (secrets masked)."""
        return mask_url(self.storage)

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

    def prepare(self) -> None:
        """Create the run directory and check that it, its cache and a journal's folder take files
        (one line naming the path, exit 2, before any training)."""
        from advisor.runs.files import check_writable

        check_writable(self.dir, "run directory")
        check_writable(self.cache, "feature cache")
        if not self.is_rdb:
            check_writable(Path(self.storage).parent, "journal folder")

    def task_store(self) -> TaskStore:
        """The store of the run's task and source model (``advisor.runs.taskstore``)."""
        from advisor.runs.taskstore import open_task_store

        return open_task_store(self.storage)

    def optuna_storage(self, heartbeat: bool = True) -> Any:
        """The Optuna storage (a torn journal line is repaired first; see ``advisor.runs.storage``)."""
        from advisor.runs.storage import open_storage

        return open_storage(self.storage, heartbeat=heartbeat)
