"""The search: one Optuna study per (task fingerprint, strategy), with a shared trial budget.

The objective only orchestrates: the strategy suggests its own parameters and trains; the
objective forwards each epoch's validation score to Optuna (``trial.report``) and prunes.
The budget is a number of *finished* (complete or pruned) trials per strategy, stored on the
study, so a rerun of a finished run adds nothing and several workers share it: a worker asks
for a trial, checks the trial's rank among the non-failed trials, and fails a surplus trial
without running it (``MaxTrialsCallback`` alone overshoots with concurrent workers).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from advisor.errors import AdvisorError
from advisor.plugin.contracts import FitResult, Strategy, TransferTask
from advisor.runs.storage import pid_alive, worker_host, worker_id

#: Default finished trials per strategy: sized so ``advisor recommend --demo`` meets its
#: 3-minute target on a 2-core CPU (see BENCHMARKS.md).
DEFAULT_TRIALS = 6
MAX_CONSECUTIVE_FAILURES = 3
BUDGET_ATTR = "budget"


def study_name(run: str, strategy: str) -> str:
    return f"{run}:{strategy}"


def make_study(storage: Any, run: str, strategy: Strategy, task: TransferTask, seed: int) -> Any:
    """Create or load the study of ``strategy``; a new study gets the default setting enqueued."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=3)
    # Prune only after a third of the epochs: early epochs rank settings poorly (a low
    # learning rate starts slowly and often ends best).
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=max(3, task.max_epochs // 3))
    name = study_name(run, strategy.name)
    try:  # load first: a failed create of an existing study still writes to a journal file
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", sampler=sampler,
                                    pruner=pruner, load_if_exists=True)
    if not study.trials:
        study.set_user_attr("strategy", strategy.name)
        study.enqueue_trial(strategy.default_params(task), skip_if_exists=True)
    return study


def get_budget(study: Any) -> int:
    return int(study.user_attrs.get(BUDGET_ATTR, 0))


def raise_budget(study: Any, trials: int) -> int:
    """Raise the study's budget to ``trials`` (never lowers it); returns the budget in force."""
    budget = max(get_budget(study), int(trials))
    if budget != get_budget(study):
        study.set_user_attr(BUDGET_ATTR, budget)
    return budget


def _states() -> tuple[Any, Any, Any, Any]:
    from optuna.trial import TrialState

    return TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.FAIL


def finished_trials(study: Any) -> int:
    complete, pruned, _, _ = _states()
    return len(study.get_trials(deepcopy=False, states=(complete, pruned)))


def running_trials(study: Any) -> list[Any]:
    _, _, running, _ = _states()
    return study.get_trials(deepcopy=False, states=(running,))


def reap_dead_trials(study: Any) -> int:
    """Mark failed the RUNNING trials whose worker is provably dead (same host, pid gone).

    A journal file has no heartbeats; an RDB storage with heartbeats also has its expired
    trials failed by Optuna here. With heartbeats, a reaped trial is retried like an expired
    one (the storage's ``RetryFailedTrialCallback`` enqueues its parameters again). Returns how
    many trials were failed by the pid check.
    """
    import copy

    import optuna

    _, _, _, fail = _states()
    host = worker_host()
    storage = study._storage
    reaped = 0
    for t in running_trials(study):
        worker = str(t.user_attrs.get("worker", ""))
        w_host, _, w_pid = worker.rpartition(":")
        if w_host == host and w_pid.isdigit() and int(w_pid) != os.getpid() and not pid_alive(int(w_pid)):
            storage.set_trial_user_attr(t._trial_id, "error", f"worker {worker} died")
            try:
                if not storage.set_trial_state_values(t._trial_id, state=fail):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # another process reaped it first
            reaped += 1
            callback = getattr(storage, "get_heartbeat_stale_trial_callback", lambda: None)()
            if callback is not None:
                callback(study, copy.deepcopy(storage.get_trial(t._trial_id)))
    # Optuna's storage wrapper (_CachedStorage) has no ``heartbeat_interval`` attribute: always ask
    # Optuna, which does nothing for storages without heartbeats.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    return reaped


def wait_for_running(states: list[SearchState], deadline: float | None = None, poll: float = 1.0) -> bool:
    """Wait until no trial of these studies is RUNNING (other workers finish; dead ones are reaped).

    Returns False when ``deadline`` passed first.
    """
    while True:
        busy = False
        for state in states:
            reap_dead_trials(state.study)
            busy = busy or bool(running_trials(state.study))
        if not busy:
            return True
        if deadline is not None and time.time() >= deadline:
            return False
        time.sleep(poll)


class SurplusTrial(Exception):
    """This trial's rank is past the budget: another worker already holds every slot."""


class Objective:
    """Optuna objective for one strategy: suggest, train, report every epoch, prune."""

    def __init__(self, strategy: Strategy, task: TransferTask, budget: int) -> None:
        self.strategy = strategy
        self.task = task
        self.budget = budget

    def __call__(self, trial: Any) -> float:
        import optuna

        trial.set_user_attr("worker", worker_id())
        self._check_rank(trial)
        started = time.perf_counter()
        params = self.strategy.search_space(trial, self.task)
        # Everything the fit used, not only what was suggested: the retrain on train+val must
        # train with the same batch size (a default of the search split's size), or "epochs"
        # would mean fewer steps there.
        trial.set_user_attr("params", {k: v for k, v in params.items()
                                       if isinstance(v, int | float | str | bool) or v is None})

        def report(epoch: int, value: float) -> None:
            trial.report(float(value), epoch)
            if trial.should_prune():
                trial.set_user_attr("wall_s", round(time.perf_counter() - started, 3))
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        try:
            result: FitResult = self.strategy.fit(self.task, params, report)
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("error", _one_line(exc))
            trial.set_user_attr("wall_s", round(time.perf_counter() - started, 3))
            raise
        trial.set_user_attr("wall_s", round(time.perf_counter() - started, 3))
        trial.set_user_attr("epochs", int(result.epochs))
        if result.val_pred is not None:
            trial.set_user_attr("val_pred", [int(v) for v in result.val_pred])
        info = {k: v for k, v in result.info.items() if isinstance(v, int | float | str | bool)}
        if info:
            trial.set_user_attr("info", info)
        if result.val_score is None:
            raise AdvisorError(f"strategy {self.strategy.name} returned no validation score")
        return float(result.val_score)

    def _check_rank(self, trial: Any) -> None:
        complete, pruned, running, _ = _states()
        alive = trial.study.get_trials(deepcopy=False, states=(complete, pruned, running))
        numbers = sorted(t.number for t in alive)
        if trial.number in numbers and numbers.index(trial.number) >= self.budget:
            trial.set_user_attr("surplus", True)
            raise SurplusTrial(f"trial {trial.number} is past the budget of {self.budget}")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


@dataclass
class SearchState:
    """Progress of one strategy's search in this invocation."""

    strategy: Strategy
    study: Any
    budget: int
    consecutive_failures: int = 0
    failed: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.failed or finished_trials(self.study) >= self.budget


def run_search(
    states: list[SearchState],
    task: TransferTask,
    deadline: float | None = None,
    on_trial: Callable[[SearchState, Any], None] | None = None,
) -> bool:
    """Run trials round-robin over ``states`` (in the given order: the quick advice's ranking)
    until every budget is spent, a deadline passes or a strategy fails 3 times in a row.

    Round-robin shares a ``--timeout`` fairly: every strategy gets its n-th trial before any
    gets its (n+1)-th, and better-ranked strategies go first within a round. Returns True
    when every budget is spent (or failed).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    while True:
        active = [s for s in states if not s.done]
        if not active:
            return True
        progressed = False
        for state in active:
            if deadline is not None and time.time() >= deadline:
                return False
            if state.done:
                continue
            reap_dead_trials(state.study)
            if finished_trials(state.study) + len(running_trials(state.study)) >= state.budget:
                continue  # other workers hold the remaining slots
            objective = Objective(state.strategy, task, state.budget)
            ran: list[Any] = []
            state.study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False,
                                 callbacks=[lambda _study, frozen, ran=ran: ran.append(frozen)])
            trial = ran[0] if ran else None
            progressed = True
            _, _, _, fail = _states()
            if trial is not None and trial.state == fail and not trial.user_attrs.get("surplus"):
                state.consecutive_failures += 1
                state.errors.append(str(trial.user_attrs.get("error", "unknown error")))
                if state.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
                    state.failed = True
            elif trial is not None and trial.state != fail:
                state.consecutive_failures = 0
            if on_trial is not None and trial is not None:
                on_trial(state, trial)
        if not progressed:
            # Every remaining slot is held by another live worker: wait for them.
            time.sleep(1.0)
