"""``advisor worker``: join a run's search from another process or machine (DESIGN.md §6).

A worker waits for the run's task to appear in the storage, loads the task and the run's
stored source model (never a rebuilt one), loads the data the task names (data paths must be
readable here; built-in scenarios need no files), refuses data whose fingerprints differ, and
runs trials on the run's studies until every budget is spent. Optuna's storage is the only
coordination point: budgets are shared through the studies (``advisor.search.study``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from advisor.errors import AdvisorFailure, InputError
from advisor.plugin.registry import Registry, get_registry
from advisor.runs.location import RunLocation
from advisor.runs.storage import worker_id
from advisor.runs.taskstore import StoredTask, TaskStore, inputs_from_store

#: Seconds a worker waits, by default, for the run to be created.
DEFAULT_WAIT = 300.0
POLL_S = 2.0

Event = Callable[[str, dict[str, Any]], None]


@dataclass
class WorkerResult:
    """What one worker did."""

    run: str
    worker: str
    device: str
    trials: int  # trials this worker finished (complete or pruned)
    failed: int  # trials this worker ran that failed (surplus trials excluded)
    complete: bool  # every budget of the run is spent (False: a strategy failed 3 times in a row here)
    elapsed_s: float


def wait_for_task(store: TaskStore, run: str, wait: float, poll: float = POLL_S) -> StoredTask:
    """The run's stored task once its studies exist; AdvisorFailure after ``wait`` seconds."""
    deadline = time.time() + max(0.0, wait)
    while True:
        task = store.load(run)
        if task is not None and task.strategies:
            return task
        if time.time() >= deadline:
            raise AdvisorFailure(f"run {run!r} did not appear in the storage within {wait:g} s; start "
                                 "`advisor recommend --storage ... --run NAME` or raise --wait")
        time.sleep(min(poll, max(0.05, deadline - time.time())))


def run_worker(
    storage: str,
    run: str,
    *,
    device: str = "auto",
    threads: int | None = None,
    wait: float = DEFAULT_WAIT,
    run_dir: str | None = None,
    registry: Registry | None = None,
    on_event: Event | None = None,
) -> WorkerResult:
    """Work on ``run`` in ``storage`` until every budget is spent; see the module docstring.

    ``run_dir`` holds this machine's feature cache (default ``advisor-runs/<run>``)."""
    from advisor.device import resolve_device, set_threads
    from advisor.features.cache import FeatureCache
    from advisor.pipeline import build_task
    from advisor.runs.files import check_writable
    from advisor.search.study import SearchState, finished_trials, get_budget, make_study, run_search

    emit = on_event or (lambda kind, payload: None)
    if wait < 0:
        raise InputError("--wait must be 0 or more seconds")
    started = time.time()
    location = RunLocation.resolve(run_dir, storage, run)
    check_writable(location.cache, "feature cache")
    set_threads(threads)
    device = resolve_device(device)
    reg = registry or get_registry()
    store = location.task_store()
    stored = wait_for_task(store, run, wait)
    request = replace(stored.input_request(), device=device)
    inputs = inputs_from_store(request, stored, store, reg)
    emit("inputs", {"lines": inputs.describe()})
    strategies = [reg.strategy(name) for name in stored.strategies]
    cache = FeatureCache(location.cache, device=device)
    task = build_task(inputs, request, stored.options["score"], int(stored.options["max_epochs"]), cache, device)
    optuna_storage = location.optuna_storage()
    states = []
    for s in strategies:
        study = make_study(optuna_storage, run, s, task, request.seed)
        states.append(SearchState(s, study, get_budget(study)))
    emit("search_start", {"total": sum(st.budget for st in states)})
    counts = {"trials": 0, "failed": 0}

    def on_trial(state: SearchState, trial: Any) -> None:
        if trial.state.name in ("COMPLETE", "PRUNED"):
            counts["trials"] += 1
        elif not trial.user_attrs.get("surplus"):
            counts["failed"] += 1
        emit("trial", {"strategy": state.strategy.name, "number": trial.number, "state": trial.state.name,
                       "value": trial.value})

    run_search(states, task, None, on_trial=on_trial)
    complete = all(finished_trials(st.study) >= st.budget for st in states)  # False: a strategy failed here
    return WorkerResult(run, worker_id(), device, counts["trials"], counts["failed"], complete,
                        round(time.time() - started, 2))
