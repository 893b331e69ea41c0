"""Writes that survive (issue 15): atomic files, writable locations checked early, a torn journal repaired.

- ``atomic_write_bytes``/``atomic_write_text``: a temporary file in the same folder, fsynced, then renamed,
  so a reader (or the next run after a crash or a full disk) never sees half a file.
- ``check_writable``: a location is tried with a real file before any training (permission bits say
  nothing for root, a read-only mount or a path under a regular file).
- ``repair_journal``: a journal whose last line was cut (full disk, killed writer) is truncated to its
  last complete line, under Optuna's own journal lock so a live writer's line is never touched.
- ``disk_full``: the ``ENOSPC``/``EDQUOT`` error behind any exception, for a one-line message.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

from advisor.errors import AdvisorFailure, InputError

_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(exc: BaseException | None) -> OSError | None:
    """The "no space left" OSError that caused ``exc`` (following ``__cause__``/``__context__``), if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _FULL:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def disk_full_failure(exc: OSError, path: Path | str | None = None) -> AdvisorFailure:
    """The one-line failure for a full disk: what was being written and how to go on."""
    where = path or exc.filename or "a file"
    return AdvisorFailure(f"no space left on the device writing {where} ({exc.strerror or 'disk full'}); "
                          "free some space and rerun the same command: finished trials are kept")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a per-process temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in _FULL:
            raise disk_full_failure(exc, path) from exc
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def check_writable(folder: Path, what: str) -> None:
    """Create ``folder`` if needed and write a probe file in it; ``InputError`` naming the path if not."""
    folder = Path(folder).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".advisor-write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if exc.errno in _FULL:
            reason = "no space left on the device"
        raise InputError(f"cannot write to the {what} {folder}: {reason}") from exc


def check_export_target(target: str | Path) -> None:
    """``--export FILE``: its folder takes files and FILE is not a folder (checked before any training)."""
    path = Path(target).expanduser()
    if path.is_dir():
        raise InputError(f"--export {target} is a directory; give a file path such as {path / 'model.pt'}")
    check_writable(path.parent, "export folder")


def _last_line_start(f: object, size: int) -> int:
    """Offset just after the last newline before the file's final byte (0 when there is none)."""
    pos = size - 1  # the final byte itself may be the newline ending the last line
    chunk = 1 << 16
    while pos > 0:
        start = max(0, pos - chunk)
        f.seek(start)  # type: ignore[attr-defined]
        block = f.read(pos - start)  # type: ignore[attr-defined]
        i = block.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


def repair_journal(path: Path) -> int:
    """Drop a torn last line of an Optuna journal file; return the bytes dropped (0: intact).

    Held under Optuna's journal lock (the one ``JournalFileBackend`` takes to append), so a line a
    live writer is appending is never mistaken for a torn one. Warns on stderr in one line.
    """
    from optuna.storages.journal import JournalFileSymlinkLock
    from optuna.storages.journal._file import get_lock_file

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    with get_lock_file(JournalFileSymlinkLock(str(path))), open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        start = _last_line_start(f, size)
        f.seek(start)
        last = f.read()
        if last.endswith(b"\n"):
            try:
                json.loads(last)
                return 0
            except ValueError:
                pass
        f.truncate(start)
        f.flush()
        os.fsync(f.fileno())
    dropped = size - start
    sys.stderr.write(f"advisor: warning: {path}: dropped a torn last line ({dropped} bytes, an interrupted "
                     "write); the trials before it are kept\n")
    sys.stderr.flush()
    return dropped
