"""The search loop with a fake strategy: budgets, resume, failures, dead workers, surplus trials, workers that
explore, re-enqueued dead trials and isolated plugin calls."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from advisor.runs.storage import open_storage
from advisor.search.study import (
    MAX_REDRAWS,
    SearchState,
    finished_trials,
    get_budget,
    make_study,
    raise_budget,
    reap_dead_trials,
    requeue_dead_trials,
    run_search,
    trial_seed,
)
from tests.search.fake_strategy import Fake, fake_task


@pytest.fixture
def task():
    return fake_task()


def state(tmp_path, task, strategy, budget, run="run"):
    storage = open_storage(str(tmp_path / "optuna.journal"))
    study = make_study(storage, run, strategy, task, seed=0)
    return SearchState(strategy, study, raise_budget(study, budget))


def test_budget_is_exact_and_default_setting_first(tmp_path, task):
    s = state(tmp_path, task, Fake(), 5)
    assert run_search([s], task)
    assert finished_trials(s.study) == 5
    assert s.study.trials[0].params == {"lam": 1.0}
    assert all(t.user_attrs["worker"].endswith(f":{os.getpid()}") for t in s.study.trials)
    assert all("wall_s" in t.user_attrs for t in s.study.trials)


def test_rerun_adds_nothing_and_trials_only_raise(tmp_path, task):
    fake = Fake()
    s = state(tmp_path, task, fake, 3)
    run_search([s], task)
    calls = fake.calls
    again = state(tmp_path, task, fake, 3)
    run_search([again], task)
    assert fake.calls == calls and len(again.study.trials) == 3
    lower = state(tmp_path, task, fake, 1)
    assert lower.budget == 3 and get_budget(lower.study) == 3
    more = state(tmp_path, task, fake, 5)
    run_search([more], task)
    assert finished_trials(more.study) == 5 and len({t.number for t in more.study.trials}) == 5


def test_three_failures_in_a_row_stop_a_strategy(tmp_path, task):
    s = state(tmp_path, task, Fake(fail_always=True), 6)
    assert run_search([s], task)
    assert s.failed and len(s.study.trials) == 3, [(t.number, t.state, t.user_attrs) for t in s.study.trials]
    assert all(t.state == optuna.trial.TrialState.FAIL for t in s.study.trials)
    assert s.errors[-1] == "RuntimeError: boom"


def test_trial_of_a_dead_worker_is_failed_and_rerun(tmp_path, task):
    s = state(tmp_path, task, Fake(), 2)
    trial = s.study.ask()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{int(dead.stdout)}")
    live = s.study.ask()
    live.set_user_attr("worker", f"{socket.gethostname()}:{os.getppid()}")  # a live process: left alone
    assert reap_dead_trials(s.study) == 1
    states = {t.number: t.state for t in s.study.trials}
    assert states[trial.number] == optuna.trial.TrialState.FAIL
    assert states[live.number] == optuna.trial.TrialState.RUNNING


def test_surplus_trial_is_failed_without_running(tmp_path, task):
    fake = Fake()
    s = state(tmp_path, task, fake, 1)
    holder = s.study.ask()  # another worker holds the only slot
    holder.set_user_attr("worker", "elsewhere:1")
    from advisor.search.study import Objective

    s.study.optimize(Objective(fake, task, 1), n_trials=1, catch=(Exception,))
    surplus = s.study.trials[-1]
    assert surplus.state == optuna.trial.TrialState.FAIL and surplus.user_attrs.get("surplus")
    assert fake.calls == 0


# --------------------------------------------------------------------------- workers that explore

REPO = Path(__file__).resolve().parents[2]


def _params(study) -> list[dict]:
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return [t.params for t in study.get_trials(deepcopy=False, states=done)]


def _worker(storage: str, budget: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tests.search.fake_strategy", storage, str(budget), *extra],
                            cwd=REPO, stderr=subprocess.PIPE, text=True)


def test_a_single_process_run_gives_the_same_trials_every_time(tmp_path, task):
    runs = []
    for name in ("a", "b"):
        s = state(tmp_path / name, task, Fake(), 6)
        assert run_search([s], task)
        runs.append(_params(s.study))
    assert runs[0] == runs[1]
    assert len({p["lam"] for p in runs[0]}) == 6


def test_each_trial_has_its_own_sampler_seed():
    assert trial_seed(0, "fake", 1) == trial_seed(0, "fake", 1)
    assert len({trial_seed(0, "fake", n) for n in range(50)}) == 50
    assert trial_seed(0, "fake", 1) != trial_seed(1, "fake", 1) != trial_seed(0, "other", 1)


def _check_two_workers(storage: str, study) -> None:
    finished = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    assert len(finished) == 10
    workers = {t.user_attrs["worker"] for t in finished}
    assert len(workers) == 2, workers  # each process finished trials
    params = [tuple(sorted(t.params.items())) for t in finished]
    assert len(set(params)) == len(params), params  # and no setting was tried twice


def _two_workers(storage: str) -> None:
    make_study(open_storage(storage), "run", Fake(), fake_task(), seed=0)  # as `advisor recommend` would
    procs = [_worker(storage, 10, "--delay", "0.3") for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-2000:]


def test_two_processes_on_one_journal_never_repeat_a_setting(tmp_path):
    storage = str(tmp_path / "optuna.journal")
    _two_workers(storage)
    study = optuna.load_study(study_name="run:fake", storage=open_storage(storage))
    _check_two_workers(storage, study)


@pytest.mark.postgres
@pytest.mark.slow
def test_two_processes_on_postgresql_never_repeat_a_setting(postgres_url):
    _two_workers(postgres_url)
    study = optuna.load_study(study_name="run:fake", storage=open_storage(postgres_url, heartbeat=False))
    _check_two_workers(postgres_url, study)


def test_a_proposal_equal_to_a_finished_trial_is_drawn_again(tmp_path, task):
    s = state(tmp_path, task, Fake(), 4)
    assert run_search([s], task)
    first = _params(s.study)
    s.study.enqueue_trial(first[0])  # the default again: it must not be trained twice
    more = state(tmp_path, task, Fake(), 6)
    assert run_search([more], task)
    params = [p["lam"] for p in _params(more.study)]
    assert len(params) == 6 and len(set(params)) == 6
    duplicates = [t for t in more.study.trials if "duplicate" in t.user_attrs]
    assert [t.params for t in duplicates] == [first[0]]
    assert duplicates[0].state == optuna.trial.TrialState.FAIL and not more.errors


class TwoSettings(Fake):
    """A search space of two settings: a budget of 4 must still finish (duplicates allowed at last)."""

    def search_space(self, trial, task):
        return {"lam": trial.suggest_categorical("lam", [0.5, 1.0])}


def test_an_exhausted_space_still_spends_its_budget(tmp_path, task):
    s = state(tmp_path, task, TwoSettings(), 4)
    assert run_search([s], task)
    assert finished_trials(s.study) == 4 and not s.failed
    assert {p["lam"] for p in _params(s.study)} == {0.5, 1.0}
    duplicates = [t for t in s.study.trials if "duplicate" in t.user_attrs]
    # redraws before each of the 2 settings was found, then MAX_REDRAWS once; not MAX_REDRAWS per later trial
    assert MAX_REDRAWS <= len(duplicates) <= MAX_REDRAWS + 2


class NoParams(Fake):
    def search_space(self, trial, task):
        return {"lam": 1.0}


def test_a_strategy_without_hyperparameters_is_not_redrawn(tmp_path, task):
    s = state(tmp_path, task, NoParams(), 3)
    assert run_search([s], task)
    assert finished_trials(s.study) == 3 and len(s.study.trials) == 3


# --------------------------------------------------------------------------- dead trials run again, once


def test_a_trial_killed_mid_fit_is_enqueued_again_once(tmp_path, task):
    storage = str(tmp_path / "optuna.journal")
    marker = tmp_path / "fitting"
    victim = _worker(storage, 3, "--hang", str(marker))
    deadline = time.time() + 120
    while not marker.exists():
        assert victim.poll() is None and time.time() < deadline, victim.stderr.read() if victim.stderr else ""
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    s = state(tmp_path, task, Fake(), 3)
    killed = s.study.trials[0]
    assert killed.state == optuna.trial.TrialState.RUNNING and killed.params == {"lam": 1.0}
    assert run_search([s], task)
    trials = s.study.trials
    assert trials[0].state == optuna.trial.TrialState.FAIL and trials[0].user_attrs["died"]
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == 0]
    assert len(retries) == 1 and retries[0].params == {"lam": 1.0}
    assert retries[0].state == optuna.trial.TrialState.COMPLETE
    again = state(tmp_path, task, Fake(), 4)  # a later resume does not enqueue it a second time
    assert run_search([again], task)
    assert len([t for t in again.study.trials if t.system_attrs.get("failed_trial") == 0]) == 1
    assert requeue_dead_trials(again.study) == []


def test_a_trial_whose_fit_raised_is_not_enqueued_again(tmp_path, task):
    s = state(tmp_path, task, Fake(fail_always=True), 2)
    run_search([s], task)
    reap_dead_trials(s.study)
    assert not [t for t in s.study.trials if "failed_trial" in t.system_attrs]


# --------------------------------------------------------------------------- plugin calls isolated


class BadDefaults(Fake):
    name = "bad_defaults"

    def default_params(self, task):
        return {}["lam"]


class BadSpace(Fake):
    name = "bad_space"

    def search_space(self, trial, task):
        raise ValueError("no space today")


def test_a_raising_default_params_fails_only_its_strategy(tmp_path, task):
    from advisor import hookimpl
    from advisor.plugin.registry import build_registry

    class Plugin:
        @hookimpl
        def advisor_register_strategies(self, register):
            register(BadDefaults())
            register(Fake())

    reg = build_registry(load_entry_points=False, plugins=[("fakes", Plugin())])
    assert not reg.failures
    bad = state(tmp_path, task, reg.strategy("bad_defaults"), 2, run="r")
    good = state(tmp_path, task, reg.strategy("fake"), 2, run="r")
    assert run_search([bad, good], task)
    assert bad.failed and bad.errors == ["default_params: KeyError: 'lam'"]
    assert finished_trials(good.study) == 2 and not good.failed


def test_a_raising_search_space_fails_its_trials_with_the_error(tmp_path, task):
    bad = state(tmp_path, task, BadSpace(), 4)
    assert run_search([bad], task)
    assert bad.failed and bad.errors[-1] == "search_space: ValueError: no space today"
    assert len(bad.study.trials) == 3
