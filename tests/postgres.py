"""A throwaway PostgreSQL cluster for tests: ``initdb`` in a temp dir, a free port, stopped afterwards.

Debian keeps ``initdb``/``pg_ctl`` in ``/usr/lib/postgresql/<version>/bin`` (not on PATH).
``initdb`` refuses to run as root, so as root the cluster runs as the ``postgres`` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DB_NAME = "advisor_test"


def find_bin_dir() -> Path | None:
    """The newest PostgreSQL server folder holding ``initdb`` and ``pg_ctl`` (or one on PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_cluster(bin_dir: Path) -> Iterator[str]:
    """Start a cluster (trust authentication) and yield ``postgresql://postgres@127.0.0.1:PORT/DB``."""
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    root = Path(tempfile.mkdtemp(prefix="advisor-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if as_root:
        pw = pwd.getpwnam("postgres")
        for p in (root, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    port = _free_port()
    pg_ctl = [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data)]
    started = False
    try:
        subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
                        "--no-sync"], check=True, capture_output=True)
        subprocess.run([*pg_ctl, "-o", f"-p {port} -k {sock} -c listen_addresses=127.0.0.1",
                        "-l", str(root / "log"), "-w", "start"], check=True, capture_output=True)
        started = True
        createdb = bin_dir / "createdb"
        if not createdb.exists():
            createdb = Path(shutil.which("createdb") or "createdb")
        subprocess.run([*prefix, str(createdb), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", DB_NAME],
                       check=True, capture_output=True)
        yield f"postgresql://postgres@127.0.0.1:{port}/{DB_NAME}"
    finally:
        if started:
            subprocess.run([*pg_ctl, "-m", "immediate", "-w", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
