"""The search loop with a fake strategy: budgets, resume, failures, dead workers, surplus trials."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import optuna
import pytest

from advisor.data.domain import Domain
from advisor.plugin.contracts import FitResult, Needs
from advisor.runs.storage import open_storage
from advisor.search.study import (
    SearchState,
    finished_trials,
    get_budget,
    make_study,
    raise_budget,
    reap_dead_trials,
    run_search,
)


class Fake:
    """A strategy that 'trains' instantly: its score is a smooth function of lam."""

    name = "fake"
    family = "model"
    description = "fake"
    needs = Needs()

    def __init__(self, fail_always: bool = False) -> None:
        self.fail_always = fail_always
        self.calls = 0

    def default_params(self, task):
        return {"lam": 1.0}

    def search_space(self, trial, task):
        return {"lam": trial.suggest_float("lam", 0.01, 10, log=True)}

    def fit(self, task, params, report):
        self.calls += 1
        if self.fail_always:
            raise RuntimeError("boom")
        score = float(1 / (1 + abs(np.log(params["lam"]))))
        for epoch in range(3):
            if report:
                report(epoch, score * (epoch + 1) / 3)
        return FitResult(model=None, val_score=score, val_pred=np.zeros(4, dtype=np.int64), epochs=3)

    def risks(self, signals, task):
        return []


@pytest.fixture
def task():
    from advisor.plugin.contracts import TransferTask

    d = Domain("t", np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1]), ("a", "b"), "features")
    return TransferTask(source=None, target_train=d, target_val=d, backbone=None)  # type: ignore[arg-type]


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
