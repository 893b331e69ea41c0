"""Workers on a journal-file run (no PostgreSQL), the stored task, and storage errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from advisor.errors import AdvisorFailure, InputError
from advisor.runs.storage import open_storage
from advisor.runs.taskstore import FileTaskStore, StoredTask, check_data, sha256
from advisor.search.study import finished_trials, get_budget, study_name

TINY = ["--demo", "digits-shift", "--strategies", "l2sp", "--trials", "2", "--max-epochs", "5", "--threads", "1"]


def advisor(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "advisor", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())


def _task(run: str = "r", model: bytes = b"weights") -> StoredTask:
    return StoredTask(run, "fp", {"demo": "digits-shift"}, {"score": "accuracy", "max_epochs": 5},
                      {"target_train": "a", "target_val": "b", "model": "m"}, sha256(model), True, "note")


def test_file_store_first_writer_wins_and_checks_the_model_hash(tmp_path: Path) -> None:
    store = FileTaskStore(tmp_path)
    assert store.load("r") is None
    first = store.create(_task(model=b"one"), b"one")
    second = store.create(_task(model=b"two"), b"two")  # loses: the first task stays
    assert second.model_sha256 == first.model_sha256 == sha256(b"one")
    assert store.model(second) == b"one"
    assert store.add_strategies("r", ["a", "b"]).strategies == ["a", "b"]
    assert store.add_strategies("r", ["b", "c"]).strategies == ["a", "b", "c"]
    (model_file,) = tmp_path.glob("r.model-*.pt")  # the loser's model file is removed
    model_file.write_bytes(b"tampered")
    with pytest.raises(AdvisorFailure, match="does not match its SHA-256"):
        store.model(first)
    with pytest.raises(InputError, match="cannot name a file"):
        store.load("../escape")


def test_check_data_names_the_domain_that_differs() -> None:
    check_data("r", {"target_train": "a", "model": "x"}, {"target_train": "a", "model": "y"})  # model ignored
    with pytest.raises(InputError, match="the target val data differ from run 'r'"):
        check_data("r", {"target_train": "a", "target_val": "b"}, {"target_train": "a", "target_val": "c"})
    with pytest.raises(InputError, match="the source data differ"):
        check_data("r", {"target_train": "a"}, {"target_train": "a", "source": "s"})


@pytest.mark.parametrize("url", ["postgresql://nobody@127.0.0.1:1/x", "postgresql://nobody@127.0.0.1:notaport/x"])
def test_unusable_storage_url_is_one_line_exit_2(tmp_path: Path, url: str) -> None:
    r = advisor("recommend", "--demo", "--storage", url, "--run", "x", "--threads", "1", cwd=tmp_path, timeout=120)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("advisor: error: cannot open storage postgresql://nobody@")


def test_worker_gives_up_after_wait(tmp_path: Path) -> None:
    r = advisor("worker", "--storage", str(tmp_path / "optuna.journal"), "--run", "nope", "--wait", "1",
                cwd=tmp_path, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("advisor: error: run 'nope' did not appear in the storage "
                                                        "within 1 s")


@pytest.mark.slow
def test_worker_joins_a_journal_run_and_report_recomputes_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    journal = run_dir / "optuna.journal"
    # The run is created but this invocation stops before its first trial: the worker does every trial.
    r = advisor("recommend", *TINY, "--run", "j", "--run-dir", str(run_dir), "--timeout", "0.001", "--json",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["recommendation"] is None
    task = json.loads((run_dir / "j.task.json").read_text())
    assert task["strategies"] and task["request"]["demo"] == "digits-shift"
    assert sha256(next(run_dir.glob("j.model-*.pt")).read_bytes()) == task["model_sha256"]

    w = advisor("worker", "--storage", str(journal), "--run", "j", "--threads", "1", "--json", cwd=tmp_path)
    assert w.returncode == 0, w.stderr
    summary = json.loads(w.stdout)
    # recommend may start one trial before its 1 ms timeout is checked; the worker runs all the others.
    assert summary["complete"] and summary["trials"] >= 2 * len(task["strategies"]) - 1
    storage = open_storage(str(journal))
    by_worker = 0
    for name in task["strategies"]:
        study = optuna.load_study(study_name=study_name("j", name), storage=storage)
        assert finished_trials(study) == get_budget(study) == 2
        assert len(study.trials) == 2  # no surplus or failed trial on one machine
        by_worker += sum(t.user_attrs["worker"] == summary["worker"] for t in study.trials)
    assert by_worker == summary["trials"]

    rep = advisor("report", "--storage", str(journal), "--run", "j", "--threads", "1", "--json", cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    doc = json.loads(rep.stdout)
    assert doc["recommendation"]["strategy"] in task["strategies"]
    assert all(row["trials"] == row["budget"] == 2 for row in doc["strategies"])

    # Data that differ from the run's are refused, naming the domain.
    task["data_fingerprints"]["target_test"] = "0" * 16
    (run_dir / "j.task.json").write_text(json.dumps(task))
    bad = advisor("worker", "--storage", str(journal), "--run", "j", "--threads", "1", cwd=tmp_path)
    assert bad.returncode == 2
    assert "the target test data differ from run 'j'" in bad.stderr.strip().splitlines()[-1]
