"""Runs that survive: bad output locations refused before training, a full disk mid-run, no secret written."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.storages.journal import JournalFileBackend

from advisor.cli import main
from advisor.runs.location import RunLocation

TINY = ["--demo", "digits-shift", "--strategies", "l2sp", "--trials", "2", "--max-epochs", "2", "--threads", "1"]
SECRET = "S3cr3tXYZ"


def advisor(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "advisor", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=os.environ.copy())


def test_run_dir_under_a_file_is_refused_before_training(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")  # root ignores permission bits; a regular file as parent does not
    started = time.time()
    r = advisor("recommend", *TINY, "--run-dir", "a-file/run", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == [f"advisor: error: cannot write to the run directory {Path('a-file') / 'run'}: Not a directory"]
    assert time.time() - started < 30


def test_export_folder_under_a_file_is_refused_before_training(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    r = advisor("recommend", *TINY, "--run-dir", "run", "--export", "a-file/out/model.pt", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"advisor: error: cannot write to the export folder {Path('a-file') / 'out'}: Not a directory"]
    assert not (tmp_path / "run").exists()  # nothing was created, nothing trained
    rep = advisor("report", "run", "--export", "a-file/model.pt", cwd=tmp_path)
    assert rep.returncode == 2 and "export folder a-file" in rep.stderr


def test_no_secret_in_any_file_or_row_with_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    url = f"sqlite:///{db}?password={SECRET}"  # SQLite has no password: stripped before connecting
    r = advisor("recommend", "--demo", "--trials", "0", "--threads", "1", "--storage", url, "--run", "r",
                "--run-dir", "run", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert SECRET not in r.stdout + r.stderr
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert db in files and any(p.name == "config.json" for p in files)
    assert [p for p in files if SECRET.encode() in p.read_bytes()] == []  # the database's rows included
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["storage"] == config["options"]["storage"] == f"sqlite:///{db}?password=***"
    assert json.loads(r.stdout)["run"]["storage"].endswith("password=***")
    # The run reopens from its directory alone: the masked secret is dropped when connecting.
    loc = RunLocation.from_dir(tmp_path / "run")
    task = loc.task_store().load("r")
    assert task is not None and task.run == "r"


@pytest.mark.slow
def test_full_disk_mid_run_is_one_line_and_the_run_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """ENOSPC injected into Optuna's journal append after some trials, leaving a torn line behind."""
    monkeypatch.chdir(tmp_path)
    real = JournalFileBackend.append_logs
    calls = {"n": 0}

    def filling(self: JournalFileBackend, logs: list) -> None:
        calls["n"] += 1
        if calls["n"] > 14:
            with open(self._file_path, "ab") as f:
                f.write(b'{"op_code": 5, "worker_id": "w", "trial_id": 9, "par')
            raise OSError(errno.ENOSPC, "No space left on device", self._file_path)
        real(self, logs)

    args = ["recommend", *TINY, "--run-dir", "run", "--run", "j", "--json"]
    monkeypatch.setattr(JournalFileBackend, "append_logs", filling)
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("advisor: error: no space left on the device writing run/optuna.journal")
    assert "Traceback" not in "\n".join(err)
    assert not (tmp_path / "run" / "optuna.journal").read_bytes().endswith(b"\n")

    monkeypatch.setattr(JournalFileBackend, "append_logs", real)  # space freed
    main(args)  # returns normally on success
    out = capsys.readouterr()
    assert "dropped a torn last line" in out.err
    doc = json.loads(out.out)
    assert doc["complete"] and all(row["trials"] == row["budget"] == 2 for row in doc["strategies"])
