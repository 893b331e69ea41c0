"""The search: one Optuna study per (task fingerprint, strategy), with a shared trial budget.

The objective only orchestrates: the strategy suggests its own parameters and trains; the
objective forwards each epoch's validation score to Optuna (``trial.report``) and prunes.
The budget is a number of *finished* (complete or pruned) trials per strategy, stored on the
study, so a rerun of a finished run adds nothing and several workers share it: a worker asks
for a trial, checks the trial's rank among the non-failed trials, and fails a surplus trial
without running it (``MaxTrialsCallback`` alone overshoots with concurrent workers).

Every trial draws its parameters from a sampler seeded by (run seed, strategy, trial number), so
two workers (or a process resuming after a kill) never draw alike while a single-process run with
a trial budget gives the same trials every time. A trial whose parameters equal those of a
finished or running trial is failed before training (``duplicate``) and the next trial draws
again; a trial whose worker died is enqueued again with its parameters, once.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from advisor.errors import AdvisorError, first_line
from advisor.plugin.contracts import FitResult, Strategy, TransferTask
from advisor.runs.storage import pid_alive, worker_host, worker_id

#: Default finished trials per strategy: sized so ``advisor recommend --demo`` meets its
#: 3-minute target on a 2-core CPU (see BENCHMARKS.md).
DEFAULT_TRIALS = 6
MAX_CONSECUTIVE_FAILURES = 3
#: Consecutive duplicate draws after which duplicates are trained (the space is exhausted), for the
#: rest of this invocation.
MAX_REDRAWS = 10
BUDGET_ATTR = "budget"
#: Racing: every strategy gets this many finished trials before any can be dropped.
RACE_FIRST_ROUND = 3
#: The smallest validation-score lead that drops a strategy (on top of two validation samples).
RACE_MIN_MARGIN = 0.02
#: Study attribute ``{"after_trials": k, "reason": ...}`` once racing has stopped the strategy.
STOPPED_ATTR = "stopped"
#: Optuna's own mark of a retried trial (its heartbeat retry callback); our re-enqueues use it too.
FAILED_TRIAL_ATTR = "failed_trial"


def study_name(run: str, strategy: str) -> str:
    return f"{run}:{strategy}"


def trial_seed(seed: int, strategy: str, number: int) -> int:
    """The sampler seed of trial ``number``: the same in every process, different for every trial."""
    digest = hashlib.sha256(f"{seed}:{strategy}:{number}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _trial_seeded_sampler(seed: int, strategy: str) -> Any:
    """A TPE sampler re-created for each trial with ``trial_seed`` (a factory: Optuna loads lazily)."""
    import optuna

    class TrialSeededSampler(optuna.samplers.BaseSampler):
        """Delegates to a ``TPESampler`` seeded by (run seed, strategy, trial number).

        A sampler seeded once per process draws the same sequence in every process of a run;
        seeding per trial number keeps a single process reproducible and makes workers differ.
        """

        def __init__(self) -> None:
            self._number: int | None = None
            self._inner: Any = None

        def _for(self, trial: Any) -> Any:
            if self._inner is None or self._number != trial.number:
                self._inner = optuna.samplers.TPESampler(seed=trial_seed(seed, strategy, trial.number),
                                                         n_startup_trials=3)
                self._number = trial.number
            return self._inner

        def infer_relative_search_space(self, study: Any, trial: Any) -> dict[str, Any]:
            return self._for(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: dict[str, Any]) -> dict[str, Any]:
            return self._for(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, param_name: str, param_distribution: Any) -> Any:
            return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

        def before_trial(self, study: Any, trial: Any) -> None:
            self._for(trial).before_trial(study, trial)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._for(trial).after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:
            pass  # the seed is a function of the trial number, by design

    return TrialSeededSampler()


def make_study(storage: Any, run: str, strategy: Strategy, task: TransferTask, seed: int) -> Any:
    """Create or load the study of ``strategy`` (no plugin code runs here: see ``start_search``)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = _trial_seeded_sampler(seed, strategy.name)
    # Prune only after a third of the epochs: early epochs rank settings poorly (a low
    # learning rate starts slowly and often ends best).
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=max(3, task.max_epochs // 3))
    name = study_name(run, strategy.name)
    try:  # load first: a failed create of an existing study still writes to a journal file
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", sampler=sampler,
                                    pruner=pruner, load_if_exists=True)
    if "strategy" not in study.user_attrs:
        study.set_user_attr("strategy", strategy.name)
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
    one (the storage's heartbeat retry callback enqueues its parameters again); without,
    ``requeue_dead_trials`` does it. Returns how many trials were failed by the pid check.
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
            storage.set_trial_user_attr(t._trial_id, "died", True)
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
    requeue_dead_trials(study)
    return reaped


def requeue_dead_trials(study: Any) -> list[int]:
    """Enqueue once more the parameters of each trial failed because its worker died.

    Only trials marked ``died`` by ``reap_dead_trials`` qualify (a fit that raised is not retried),
    and only once: a trial that is itself a retry, or whose retry exists (Optuna's heartbeat
    callback marks retries the same way), is skipped. Returns the numbers of the trials enqueued.
    """
    import optuna

    _, _, _, fail = _states()
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get(FAILED_TRIAL_ATTR) for t in trials}
    done = []
    for t in trials:
        if t.state != fail or not t.user_attrs.get("died") or not t.params:
            continue
        if t.number in retried or FAILED_TRIAL_ATTR in t.system_attrs:
            continue
        study.add_trial(optuna.trial.create_trial(
            state=optuna.trial.TrialState.WAITING,
            system_attrs={"fixed_params": dict(t.params), FAILED_TRIAL_ATTR: t.number, "retry_history": [t.number]},
        ))
        done.append(t.number)
    return done


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


class DuplicateTrial(Exception):
    """This trial drew the parameters of a finished or running trial: it is failed and drawn again."""


class Objective:
    """Optuna objective for one strategy: suggest, train, report every epoch, prune.

    Every call into the strategy (``search_space``, ``fit``) is isolated: its error is recorded on
    the trial (``error``) and the trial fails; the search loop decides whether the strategy goes on.
    """

    def __init__(self, strategy: Strategy, task: TransferTask, budget: int, allow_duplicate: bool = False) -> None:
        self.strategy = strategy
        self.task = task
        self.budget = budget
        self.allow_duplicate = allow_duplicate

    def __call__(self, trial: Any) -> float:
        import optuna

        trial.set_user_attr("worker", worker_id())
        self._check_rank(trial)
        started = time.perf_counter()
        try:
            params = self.strategy.search_space(trial, self.task)
            if not isinstance(params, dict):
                raise TypeError(f"search_space returned {type(params).__name__}, not a dict")
        except Exception as exc:
            trial.set_user_attr("error", f"search_space: {first_line(exc, with_type=True)}")
            raise
        if not self.allow_duplicate:
            self._check_duplicate(trial)
        # Everything the fit used, not only what was suggested: the retrain on train+val must
        # train with the same batch size (a default of the search split's size); ``train_rows``
        # (the rows one epoch covered here) is bookkeeping for the report, since the retrain keeps
        # the best epoch count as passes over train+val (``advisor.search.training``, "Retrain").
        stored = {k: v for k, v in params.items() if isinstance(v, int | float | str | bool) or v is None}
        stored.setdefault("train_rows", len(self.task.target_train))
        trial.set_user_attr("params", stored)

        def report(epoch: int, value: float) -> None:
            trial.report(float(value), epoch)
            if trial.should_prune():
                trial.set_user_attr("wall_s", round(time.perf_counter() - started, 3))
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        try:
            result: FitResult = self.strategy.fit(self.task, params, report)
            if result.val_score is None:
                raise AdvisorError(f"strategy {self.strategy.name} returned no validation score")
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            trial.set_user_attr("error", first_line(exc, with_type=True))
            trial.set_user_attr("wall_s", round(time.perf_counter() - started, 3))
            raise
        trial.set_user_attr("wall_s", round(time.perf_counter() - started, 3))
        trial.set_user_attr("epochs", int(result.epochs))
        if result.val_pred is not None:
            trial.set_user_attr("val_pred", [int(v) for v in result.val_pred])
        info = {k: v for k, v in result.info.items() if isinstance(v, int | float | str | bool)}
        if info:
            trial.set_user_attr("info", info)
        return float(result.val_score)

    def _check_rank(self, trial: Any) -> None:
        complete, pruned, running, _ = _states()
        alive = trial.study.get_trials(deepcopy=False, states=(complete, pruned, running))
        numbers = sorted(t.number for t in alive)
        if trial.number in numbers and numbers.index(trial.number) >= self.budget:
            trial.set_user_attr("surplus", True)
            raise SurplusTrial(f"trial {trial.number} is past the budget of {self.budget}")

    def _check_duplicate(self, trial: Any) -> None:
        """Fail the trial if a finished trial, or an earlier running one, has exactly its parameters."""
        complete, pruned, running, _ = _states()
        params = trial.params
        if not params:
            return  # nothing was drawn: a strategy without hyperparameters
        for t in trial.study.get_trials(deepcopy=False, states=(complete, pruned, running)):
            if t.number == trial.number or t.params != params:
                continue
            if t.state != running or t.number < trial.number:
                trial.set_user_attr("duplicate", t.number)
                raise DuplicateTrial(f"trial {trial.number} repeats the parameters of trial {t.number}")


@dataclass
class SearchState:
    """Progress of one strategy's search in this invocation."""

    strategy: Strategy
    study: Any
    budget: int
    consecutive_failures: int = 0
    failed: bool = False
    errors: list[str] = field(default_factory=list)
    redraws: int = 0  # consecutive duplicate draws (see MAX_REDRAWS)
    started: bool = False  # the default setting is enqueued (``start_search``)
    warm_start: list[Any] = field(default_factory=list)  # ``warmstart.WarmSetting``s a new study enqueues

    @property
    def done(self) -> bool:
        return self.failed or finished_trials(self.study) >= self.budget or stopped(self.study) is not None


def stopped(study: Any) -> dict[str, Any] | None:
    """``{"after_trials", "reason"}`` when racing dropped this strategy, else ``None``."""
    value = study.user_attrs.get(STOPPED_ATTR)
    return value if isinstance(value, dict) else None


def race_margin(n_val: int) -> float:
    """How far a strategy's best may trail the leader's and stay in the race.

    Two validation samples (two flipped predictions are within the noise of any comparison on
    this split) and never less than ``RACE_MIN_MARGIN``.
    """
    return max(2.0 / max(n_val, 1), RACE_MIN_MARGIN)


def _first_scores(study: Any, k: int) -> list[float]:
    """Values of the first ``k`` finished trials in trial-number order (pruned ones count, scoreless)."""
    complete, pruned, _, _ = _states()
    finished = sorted(study.get_trials(deepcopy=False, states=(complete, pruned)), key=lambda t: t.number)[:k]
    return [t.value for t in finished if t.state == complete and t.value is not None]


def race_decision(states: list[SearchState], target: SearchState, n_val: int) -> dict[str, Any] | None:
    """Whether racing drops ``target`` now: a deterministic function of every study's finished trials.

    For each k from ``RACE_FIRST_ROUND`` to ``target``'s finished count, once every other strategy
    has k finished trials (or is done), ``target`` is dropped at the first k where its best over
    its first k trials trails the leader's best over the leader's first k by more than
    ``race_margin``. Reference-role strategies are never dropped: a weakly tuned reference would
    make every transfer look good. Any process that checks reaches the same decision.
    """
    if target.strategy.role == "reference" or target.failed:
        return None
    margin = race_margin(n_val)
    others = [s for s in states if s is not target]
    for k in range(RACE_FIRST_ROUND, min(finished_trials(target.study), target.budget) + 1):
        if any(not s.done and finished_trials(s.study) < k for s in others):
            return None  # the first k trials of every strategy are not all in yet
        mine = _first_scores(target.study, k)
        if not mine:
            continue
        leader, lead = max(((max(v), s.strategy.name) for s in states if (v := _first_scores(s.study, k))),
                           default=(None, None))
        if leader is not None and max(mine) < leader - margin:
            return {"after_trials": k,
                    "reason": f"after {k} trials its best validation score {max(mine):.3f} trailed "
                              f"{lead}'s {leader:.3f} by more than {margin:.3f} (two validation samples)"}
    return None


def apply_racing(states: list[SearchState], n_val: int) -> None:
    """Record racing stops on the studies (read by every process before it asks for a trial)."""
    for state in states:
        if stopped(state.study) is None and not state.done:
            decision = race_decision(states, state, n_val)
            if decision is not None:
                state.study.set_user_attr(STOPPED_ATTR, decision)


def run_search(
    states: list[SearchState],
    task: TransferTask,
    deadline: float | None = None,
    on_trial: Callable[[SearchState, Any], None] | None = None,
    race: bool = True,
) -> bool:
    """Run trials round-robin over ``states`` (in the given order: the quick advice's ranking)
    until every budget is spent, a deadline passes, a strategy fails 3 times in a row, or
    racing drops it (``race_decision``: out of contention after the first round).

    Round-robin shares a ``--timeout`` fairly: every strategy gets its n-th trial before any
    gets its (n+1)-th, and better-ranked strategies go first within a round. Returns True
    when every budget is spent (or failed).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for state in states:
        start_search(state, task)
    n_val = len(task.target_val) if task.target_val is not None else 0
    while True:
        if race:
            apply_racing(states, n_val)
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
            objective = Objective(state.strategy, task, state.budget, allow_duplicate=state.redraws >= MAX_REDRAWS)
            ran: list[Any] = []
            state.study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False,
                                 callbacks=[lambda _study, frozen, ran=ran: ran.append(frozen)])
            trial = ran[0] if ran else None
            progressed = True
            _, _, _, fail = _states()
            if trial is not None and "duplicate" in trial.user_attrs:
                state.redraws += 1  # drawn again on its next turn: not a failure of the strategy
                continue
            if state.redraws < MAX_REDRAWS:
                state.redraws = 0
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


def start_search(state: SearchState, task: TransferTask) -> None:
    """Before a state's first trial here: reap dead trials (re-enqueueing their parameters) and, in a
    new study, enqueue the strategy's default setting, then its warm start (``state.warm_start``: the best
    settings of similar past tasks, see ``advisor.search.warmstart``), all before TPE's own proposals. A
    resumed study (any trial) gets neither. A raising ``default_params`` fails the strategy with its error;
    the other strategies go on."""
    from advisor.search.warmstart import enqueue

    if state.started:
        return
    state.started = True
    reap_dead_trials(state.study)
    if state.study.trials:
        return
    try:
        params = state.strategy.default_params(task)
        if not isinstance(params, dict):
            raise TypeError(f"default_params returned {type(params).__name__}, not a dict")
        state.study.enqueue_trial(params, skip_if_exists=True)
    except Exception as exc:  # noqa: BLE001 - a plugin's error is reported, never fatal to the run
        state.failed = True
        state.errors.append(f"default_params: {first_line(exc, with_type=True)}")
        return
    enqueue(state.study, state.warm_start)
