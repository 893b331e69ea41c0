"""Many workers on one PostgreSQL run: shared budgets, no overshoot, heartbeats after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from advisor.runs.storage import open_storage
from advisor.runs.taskstore import RdbTaskStore
from advisor.search.study import FAILED_TRIAL_ATTR, finished_trials, get_budget, study_name

pytestmark = [pytest.mark.postgres, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]

TINY = ["--demo", "digits-shift", "--strategies", "l2sp", "--threads", "1"]
GRACE = "4"  # seconds without a heartbeat before a trial is failed and retried


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "TRANSFER_ADVISOR_HEARTBEAT_GRACE": GRACE, **extra}


def _start(args: list[str], cwd: Path, log: str, **env: str) -> subprocess.Popen[str]:
    with open(cwd / f"{log}.out", "w") as out, open(cwd / f"{log}.err", "w") as err:
        # The child keeps its own copies of the descriptors; ours close here.
        return subprocess.Popen([sys.executable, "-m", "advisor", *args], cwd=cwd, stdout=out, stderr=err,
                                text=True, env=_env(**env))


def _wait(proc: subprocess.Popen[str], timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def _studies(url: str, run: str) -> dict[str, Any]:
    task = RdbTaskStore(url).load(run)
    assert task is not None and task.strategies
    storage = open_storage(url, heartbeat=False)
    return {n: optuna.load_study(study_name=study_name(run, n), storage=storage) for n in task.strategies}


def _check_budgets(studies: dict[str, Any]) -> None:
    for name, study in studies.items():
        trials = study.get_trials(deepcopy=False)
        numbers = [t.number for t in trials]
        assert len(numbers) == len(set(numbers)), f"{name}: a trial number repeats: {numbers}"
        assert finished_trials(study) == get_budget(study), f"{name}: {finished_trials(study)} != budget"
        assert not [t for t in trials if t.state == TrialState.RUNNING]


def _create_run(url: str, run: str, cwd: Path, trials: int, epochs: int) -> None:
    """Create the run (task, model, studies) but stop before any search: ``--timeout`` of 1 ms."""
    r = subprocess.run([sys.executable, "-m", "advisor", "recommend", *TINY, "--storage", url, "--run", run,
                        "--trials", str(trials), "--max-epochs", str(epochs), "--timeout", "0.001"],
                       cwd=cwd, capture_output=True, text=True, timeout=300, env=_env())
    assert r.returncode == 0, r.stderr


def _until_loaded(procs: list[subprocess.Popen[str]], cwd: Path, logs: list[str], timeout: float = 120) -> None:
    """Wait until every worker has loaded the run's inputs (it prints the model line)."""
    deadline = time.time() + timeout
    while not all("model: " in (cwd / f"{log}.err").read_text() for log in logs):
        assert all(p.poll() is None for p in procs), [(cwd / f"{log}.err").read_text() for log in logs]
        assert time.time() < deadline, "workers did not load the run"
        time.sleep(0.2)


def test_recommend_and_two_workers_share_the_budget(postgres_url: str, tmp_path: Path) -> None:
    run = "pg-shared"
    _create_run(postgres_url, run, tmp_path, trials=3, epochs=5)
    workers = [_start(["worker", "--storage", postgres_url, "--run", run, "--threads", "1", "--json"],
                      tmp_path, f"w{i}") for i in range(2)]
    rec = None
    try:
        _until_loaded(workers, tmp_path, ["w0", "w1"])
        rec = _start(["recommend", *TINY, "--storage", postgres_url, "--run", run, "--max-epochs", "5", "--json"],
                     tmp_path, "rec")
        assert _wait(rec, 400) == 0, (tmp_path / "rec.err").read_text()
        for i, w in enumerate(workers):
            assert _wait(w, 120) == 0, (tmp_path / f"w{i}.err").read_text()
    finally:
        for p in [*workers, rec]:
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    doc = json.loads((tmp_path / "rec.out").read_text())
    assert doc["recommendation"] is not None and doc["recommendation"]["strategy"]
    assert all(row["trials"] == row["budget"] == 3 for row in doc["strategies"])
    studies = _studies(postgres_url, run)
    _check_budgets(studies)
    finished = [t for s in studies.values() for t in s.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))]
    assert len({t.user_attrs["worker"] for t in finished}) >= 2, "trials should come from at least two workers"


def test_killed_worker_trial_is_retried_after_its_heartbeat_expires(postgres_url: str, tmp_path: Path) -> None:
    run = "pg-kill"
    _create_run(postgres_url, run, tmp_path, trials=2, epochs=30)
    # Another host name, so only the heartbeat (not the same-host pid check) can tell it died.
    victim = _start(["worker", "--storage", postgres_url, "--run", run, "--threads", "1"], tmp_path, "victim",
                    TRANSFER_ADVISOR_WORKER_HOST="elsewhere")
    survivor = None
    try:
        studies = _studies(postgres_url, run)
        deadline = time.time() + 180
        killed = None
        while killed is None:
            assert victim.poll() is None, (tmp_path / "victim.err").read_text()
            assert time.time() < deadline, "the victim never started a trial"
            for study in studies.values():
                # Mid-training: two epochs reported (its heartbeat thread has beaten by then). Strategies that
                # report once, as they finish (the linear references), would complete before the kill lands.
                running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                           if len(t.intermediate_values) >= 2]
                if running:
                    victim.send_signal(signal.SIGKILL)
                    victim.wait()
                    killed = (study, running[0].number)
                    break
            time.sleep(0.05)
        before = {(n, t.number): (t.state, t.value) for n, s in studies.items()
                  for t in s.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))}
        survivor = _start(["worker", "--storage", postgres_url, "--run", run, "--threads", "1"], tmp_path, "survivor")
        assert _wait(survivor, 400) == 0, (tmp_path / "survivor.err").read_text()
    finally:
        for p in (victim, survivor):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    study, number = killed
    trials = {t.number: t for t in study.get_trials()}
    assert trials[number].state == TrialState.FAIL
    retries = [t for t in trials.values() if t.system_attrs.get(FAILED_TRIAL_ATTR) == number]
    assert retries and retries[0].state in (TrialState.COMPLETE, TrialState.PRUNED)
    if trials[number].params:  # killed after suggesting: the retry runs the same setting
        assert retries[0].params == trials[number].params
    after = {(n, t.number): (t.state, t.value) for n, s in _studies(postgres_url, run).items() for t in s.get_trials()}
    assert all(after[key] == value for key, value in before.items()), "a finished trial was lost or changed"
    _check_budgets(_studies(postgres_url, run))

    rep = subprocess.run([sys.executable, "-m", "advisor", "report", "--storage", postgres_url, "--run", run,
                          "--threads", "1", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env=_env())
    assert rep.returncode == 0, rep.stderr
    assert json.loads(rep.stdout)["recommendation"] is not None


def _rows_text(url: str) -> str:
    """Every row of every table in the database, as text (bytes columns included)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    meta = sa.MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return "\n".join(repr(tuple(row)) for table in meta.sorted_tables for row in conn.execute(table.select()))


def test_no_password_written_and_the_run_reopens_from_its_directory(postgres_url: str, tmp_path: Path) -> None:
    """A password in the URL and as ``?password=`` (the test server trusts, so either is accepted) is in no
    file under the run, no output and no row; ``advisor report RUN_DIR --export`` reconnects with the
    masked URL from config.json (the password would come from PGPASSWORD or ~/.pgpass)."""
    user_pw, query_pw = "Us3rS3cr3t", "Qu3ryS3cr3t"
    url = postgres_url.replace("postgres@", f"postgres:{user_pw}@") + f"?password={query_pw}"
    rec = subprocess.run([sys.executable, "-m", "advisor", "recommend", *TINY, "--storage", url, "--run", "pg-secret",
                          "--run-dir", "run", "--trials", "1", "--max-epochs", "2", "--json"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, env=_env())
    assert rec.returncode == 0, rec.stderr
    rep = subprocess.run([sys.executable, "-m", "advisor", "report", "run", "--export", "model.pt", "--threads", "1",
                          "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=_env())
    assert rep.returncode == 0, rep.stderr
    assert json.loads(rep.stdout)["export"].endswith("model.pt")
    shown = json.loads(rec.stdout)["run"]["storage"]
    assert shown == postgres_url.replace("postgres@", "postgres:***@") + "?password=***"
    outputs = rec.stdout + rec.stderr + rep.stdout + rep.stderr
    leaked = [str(p) for p in tmp_path.rglob("*") if p.is_file() and any(
        s.encode() in p.read_bytes() for s in (user_pw, query_pw))]
    rows = _rows_text(postgres_url)
    assert "pg-secret" in rows
    for secret in (user_pw, query_pw):
        assert secret not in outputs and secret not in rows
    assert leaked == []
