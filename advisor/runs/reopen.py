"""Reopen a run: its saved report plus the state of its budgets, read from its storage."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from advisor.errors import InputError
from advisor.runs.storage import CONFIG_NAME, read_json


def load_run_report(run_dir: Path) -> dict[str, Any]:
    """The run's report.json, with ``unfinished`` listing budgets still open. Trains nothing."""
    if not run_dir.exists():
        raise InputError(f"{run_dir} not found")
    if not (run_dir / CONFIG_NAME).exists():
        raise InputError(f"{run_dir} is not a run directory (no {CONFIG_NAME})")
    report = run_dir / "report.json"
    if not report.exists():
        raise InputError(f"{run_dir} has no report yet: its first invocation has not reached the quick advice")
    doc = read_json(report)
    unfinished = [f"{r['strategy']}: {r['trials']} of {r['budget']} trials finished"
                  for r in doc.get("strategies", []) if r.get("trials", 0) < r.get("budget", 0)]
    if doc.get("strategies") and not doc.get("complete", True) and not unfinished:
        unfinished.append("the last invocation stopped before every budget was spent (--timeout)")
    doc["unfinished"] = unfinished
    return doc


def report_from_storage(storage: str, run: str, device: str = "auto", threads: int | None = None,
                        run_dir: str | None = None, registry: Any = None, on_event: Any = None) -> dict[str, Any]:
    """The run's report, recomputed on this machine from the task and model stored with the run.

    It runs ``advisor recommend``'s final step (seed repeats of the best settings, the verdict on
    the test split) with the recorded budgets, so it adds no search trial; it is refused while a
    budget is still open. Works from any machine that can read the storage and the data.
    """
    import optuna

    from advisor.pipeline import RecommendOptions, recommend
    from advisor.runs.location import RunLocation
    from advisor.search.study import finished_trials, get_budget, study_name

    location = RunLocation.resolve(run_dir, storage, run)
    task = location.task_store().load(run)
    if task is None:
        raise InputError(f"run {run!r} not found in {location.shown_storage}")
    if not task.strategies:
        raise InputError(f"run {run!r} has no search (it was created with --trials 0)")
    studies = location.optuna_storage()
    still_open = []
    for name in task.strategies:
        study = optuna.load_study(study_name=study_name(run, name), storage=studies)
        done, budget = finished_trials(study), get_budget(study)
        if done < budget:
            still_open.append(f"{name} {done} of {budget}")
    if still_open:
        raise InputError(f"run {run!r} still has open budgets ({', '.join(still_open)} trials finished); "
                         f"start `advisor worker --storage URL --run {run}` or wait for the workers")
    options = RecommendOptions(strategies=list(task.strategies), trials=None, score=task.options["score"],
                               storage=location.storage, run_name=run, run_dir=str(location.dir),
                               max_epochs=int(task.options["max_epochs"]),
                               n_seeds=int(task.options.get("n_seeds", 3)), threads=threads)
    request = replace(task.input_request(), device=device)
    return recommend(request, options, registry, on_event)
