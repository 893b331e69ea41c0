"""Background runs from a serialised request (the dashboard's way to start a search)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from advisor.models.inputs import InputRequest
from advisor.pipeline import RecommendOptions
from advisor.runs import background


def test_request_round_trip_masks_the_storage(tmp_path: Path) -> None:
    request = InputRequest(demo="digits-shift", seed=3)
    options = RecommendOptions(strategies=["l2sp"], trials=2, storage="postgresql://u:Pw9x@h/db", max_epochs=4)
    path = background.write_request(tmp_path, request, options)
    assert "Pw9x" not in path.read_text()
    req, opts = background.read_request(tmp_path)
    assert req == request
    assert opts.storage == "postgresql://u:***@h/db" and opts.strategies == ["l2sp"] and opts.max_epochs == 4


def test_a_bad_request_fails_in_one_line(tmp_path: Path) -> None:
    background.write_request(tmp_path, InputRequest(demo="no-such-scenario"), RecommendOptions(trials=0))
    r = subprocess.run(background.background_command(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("advisor: error:") and "no-such-scenario" in lines[0]


def test_start_run_runs_the_request_and_reports(tmp_path: Path) -> None:
    options = RecommendOptions(trials=0, threads=1)
    run_dir = background.start_run(tmp_path, InputRequest(demo="digits-shift"), options)
    deadline = time.time() + 120
    while background.run_status(run_dir).state == "running":
        assert time.time() < deadline, (run_dir / background.LOG_FILE).read_text()
        time.sleep(0.2)
    status = background.run_status(run_dir)
    assert status.state == "finished", status.error
    doc = json.loads((run_dir / background.STDOUT_FILE).read_text())
    assert doc["complete"] and doc["advice"]["ranking"]
    assert json.loads((run_dir / "report.json").read_text())["run"]["dir"] == str(run_dir)
    assert json.loads((run_dir / background.REQUEST_FILE).read_text())["options"]["run_dir"] == str(run_dir)
    assert [r["run"] for r in background.list_runs(tmp_path)] == [run_dir.name]
    assert sys.executable in json.loads((run_dir / background.PROCESS_FILE).read_text())["command"]


def test_a_cli_run_in_the_runs_folder_shows_its_real_state(tmp_path: Path) -> None:
    """A run started with `advisor recommend --run-dir` (no dashboard files) is running while its process
    lives, finished once its report is written; one whose process died without a report is failed."""
    run_dir = tmp_path / "cli-run"
    cmd = [sys.executable, "-m", "advisor", "recommend", "--demo", "--trials", "0", "--threads", "1",
           "--run-dir", str(run_dir), "--meta-store", "none"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen = set()
    deadline = time.time() + 120
    while proc.poll() is None:
        assert time.time() < deadline
        if (run_dir / "config.json").exists():
            had_report = (run_dir / "report.json").exists()
            state = background.run_status(run_dir).state
            if proc.poll() is None and not had_report:  # alive and working after the read: it must say so
                seen.add(state)
        time.sleep(0.05)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert seen == {"running"}
    assert background.run_status(run_dir).state == "finished"
    (row,) = background.list_runs(tmp_path)
    assert (row["state"], row["verdict"], row["has_report"]) == ("finished", "quick advice only", True)
    assert background.find_run(tmp_path, row["name"]) == run_dir  # ?run=<run name> finds it too

    dead = tmp_path / "dead-run"
    dead.mkdir()
    (dead / "config.json").write_text(json.dumps({"run": "dead-run"}))
    status = background.run_status(dead)
    assert status.state == "failed" and "no process works on this run" in status.error


def test_only_one_process_per_run_directory(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    background.launch(sleeper, tmp_path)
    try:
        try:
            background.launch(sleeper, tmp_path)
        except background.RunActive as exc:
            assert "already running" in str(exc)
        else:
            raise AssertionError("a second process started in the same run directory")
    finally:
        assert background.cancel_run(tmp_path, wait_s=5)
    background.launch([sys.executable, "-c", "pass"], tmp_path).wait(30)  # the lock is free again
