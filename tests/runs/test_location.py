"""Where a run lives (RunLocation), masked secrets, atomic writes and the torn-journal repair."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages.journal import JournalFileSymlinkLock

from advisor.errors import AdvisorFailure, InputError
from advisor.runs.files import atomic_write_bytes, check_export_target, check_writable, repair_journal
from advisor.runs.location import RunLocation, connect_url, is_rdb_url, mask_url, remember_secrets, scrub
from advisor.runs.storage import open_storage


@pytest.mark.parametrize(("url", "masked", "connect"), [
    ("postgresql://advisor:S3cr3t@db.example.org:5432/adv", "postgresql://advisor:***@db.example.org:5432/adv",
     "postgresql://advisor@db.example.org:5432/adv"),
    ("postgresql://advisor@db/adv?sslmode=require&password=S3cr3t&application_name=a",
     "postgresql://advisor@db/adv?sslmode=require&password=***&application_name=a",
     "postgresql://advisor@db/adv?sslmode=require&application_name=a"),
    ("postgresql+psycopg://u:p%40ss@h/db?Token=abc&PWD=x1#frag", "postgresql+psycopg://u:***@h/db?Token=***&PWD=***#frag",
     "postgresql+psycopg://u@h/db#frag"),
    ("sqlite:///runs.db?password=S3cr3t", "sqlite:///runs.db?password=***", "sqlite:///runs.db"),
    ("postgresql://h/db", "postgresql://h/db", "postgresql://h/db"),
])
def test_mask_and_connect(url: str, masked: str, connect: str) -> None:
    assert is_rdb_url(url)
    assert mask_url(url) == masked
    assert mask_url(masked) == masked
    assert connect_url(masked) == connect  # a masked secret is dropped: the driver reads the environment
    if not url.startswith("sqlite"):
        assert connect_url(url) == url  # a secret given on the command line is used as given


def test_journal_paths_are_not_urls() -> None:
    assert not is_rdb_url("advisor-runs/x/optuna.journal")
    assert not is_rdb_url("/tmp/with:colon/optuna.journal")
    assert mask_url("/tmp/a:b@c/optuna.journal") == "/tmp/a:b@c/optuna.journal"


def test_scrub_removes_seen_secrets() -> None:
    remember_secrets("postgresql://u:Zq9pLm@h/db?sslpassword=Kx7Wv2")
    assert scrub("failed for u:Zq9pLm at h (sslpassword Kx7Wv2)") == "failed for u:*** at h (sslpassword ***)"


def test_resolve_defaults(tmp_path: Path) -> None:
    loc = RunLocation.resolve(None, None, "r1")
    assert loc.dir == Path("advisor-runs") / "r1" and loc.storage == str(Path("advisor-runs") / "r1" / "optuna.journal")
    loc = RunLocation.resolve(tmp_path / "d", "postgresql://u:pw@h/db", "r2")
    assert loc.is_rdb and loc.storage == "postgresql://u:pw@h/db" and loc.shown_storage == "postgresql://u:***@h/db"
    assert loc.cache == tmp_path / "d" / "cache" and loc.config == tmp_path / "d" / "config.json"


def test_from_dir_reads_the_config(tmp_path: Path) -> None:
    d = tmp_path / "run"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"run": "r", "storage": "postgresql://u:***@h/db?password=***"}))
    loc = RunLocation.from_dir(d)
    assert (loc.run, loc.storage) == ("r", "postgresql://u@h/db")
    assert RunLocation.from_dir(d, "postgresql://u:given@h/db").storage == "postgresql://u:given@h/db"
    # A recorded journal that is gone (the directory moved): the directory's own journal.
    (d / "config.json").write_text(json.dumps({"run": "r", "storage": "/elsewhere/optuna.journal"}))
    assert RunLocation.from_dir(d).storage == str(d / "optuna.journal")
    with pytest.raises(InputError, match="is not a run directory"):
        RunLocation.from_dir(tmp_path / "nothing")


def test_unwritable_locations_name_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(InputError, match=f"cannot write to the run directory {blocker / 'run'}"):
        check_writable(blocker / "run", "run directory")
    with pytest.raises(InputError, match="export folder"):
        check_export_target(blocker / "sub" / "model.pt")
    with pytest.raises(InputError, match="is a directory"):
        check_export_target(tmp_path)
    check_writable(tmp_path / "new" / "deep", "run directory")  # created
    assert (tmp_path / "new" / "deep").is_dir() and not list((tmp_path / "new" / "deep").iterdir())


def _study(path: Path, n: int) -> optuna.Study:
    study = optuna.create_study(study_name="s", storage=open_storage(str(path)), load_if_exists=True)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=n)
    return study


def test_torn_journal_line_is_repaired_and_trials_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal = tmp_path / "optuna.journal"
    before = [t.params for t in _study(journal, 3).trials]
    intact = journal.read_bytes()
    assert repair_journal(journal) == 0 and journal.read_bytes() == intact
    with open(journal, "ab") as f:  # a writer killed (or a disk filled) mid-line
        f.write(b'{"op_code": 4, "worker_id": "w", "trial_id": 3, "par')
    study = _study(journal, 1)  # opening repairs, then the run goes on
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dropped a torn last line (52 bytes" in err
    assert [t.params for t in study.trials[:3]] == before and len(study.trials) == 4
    assert journal.read_bytes().startswith(intact) and journal.read_bytes().endswith(b"\n")


def test_repair_waits_for_the_journal_lock(tmp_path: Path) -> None:
    journal = tmp_path / "optuna.journal"
    journal.write_bytes(b'{"op_code": 0}\n{"half')
    lock = JournalFileSymlinkLock(str(journal))
    assert lock.acquire()  # a live writer is appending
    done = threading.Event()
    worker = threading.Thread(target=lambda: (repair_journal(journal), done.set()))
    worker.start()
    time.sleep(0.5)
    assert not done.is_set() and journal.read_bytes().endswith(b'{"half')
    lock.release()
    worker.join(10)
    assert done.is_set() and journal.read_bytes() == b'{"op_code": 0}\n'


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A 64 KiB tmpfs (a real full disk), where this machine lets the tests mount one."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here; the injected ENOSPC test covers the full disk")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_full_disk_keeps_the_old_file_and_no_temporary(small_tmpfs: Path) -> None:
    target = small_tmpfs / "report.json"
    atomic_write_bytes(target, b"old")
    with pytest.raises(AdvisorFailure, match=f"no space left on the device writing {target}"):
        atomic_write_bytes(target, b"x" * (1 << 20))
    assert target.read_bytes() == b"old"
    assert [p.name for p in small_tmpfs.iterdir()] == ["report.json"]
