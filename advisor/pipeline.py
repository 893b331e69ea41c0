"""The recommendation pipeline (DESIGN.md §2, §5, §6): inputs -> advice -> search -> verdict.

``recommend(request, options)`` is the Python API behind ``advisor recommend``. The target
test split is used exactly once, at the end, to score the best strategy B and the reference
(the best reference-role strategy; both picked by cross-validation on train+val, the size the
retrains train on), both retrained on train+val with their best parameters and several seeds;
the verdict's rules live in ``advisor.verdict``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from advisor import __version__
from advisor.advice.quick import Advice, quick_advice
from advisor.errors import AdvisorFailure, InputError
from advisor.models.inputs import InputRequest, ResolvedInputs, input_description, resolve_inputs
from advisor.plugin.contracts import TransferTask, is_deterministic
from advisor.plugin.registry import Registry, get_registry
from advisor.runs.files import atomic_write_text, check_export_target, check_writable
from advisor.runs.location import DEFAULT_RUNS_DIR, RunLocation, is_rdb_url, mask_url
from advisor.runs.storage import read_json, write_json
from advisor.runs.taskstore import (
    StoredTask,
    TaskStore,
    check_data,
    inputs_from_store,
    model_bytes,
    sha256,
    stored_backbone,
    with_backbone,
)
from advisor.search.crossval import CV_FOLDS, CrossVal, cross_validate, paired_se
from advisor.search.scoring import COVERS_SAMPLES, COVERS_SEEDS, SCORES, score, seed_sample_ci, seed_scores
from advisor.search.study import (
    DEFAULT_TRIALS,
    SearchState,
    finished_trials,
    get_budget,
    make_study,
    raise_budget,
    run_search,
    stopped,
    wait_for_running,
)
from advisor.search.warmstart import warm_started
from advisor.verdict import (
    LOOK_LEVEL,
    REFERENCE_ROLE,
    Gap,
    Verdict,
    choose_reference,
    choose_transfer,
    decide,
    gaps,
    mean_scores,
    pick_best,
    tie_band,
    transfer_tie_broken,
    worth_another_look,
)

#: Seeds per arm: validation repeats of each best setting (fresh seeds, not the search's trial) and retrains.
N_SEEDS = 5
REPORT_SCHEMA = 1

Event = Callable[[str, dict[str, Any]], None]


@dataclass
class RecommendOptions:
    """Everything ``advisor recommend`` takes beyond the inputs."""

    strategies: str | list[str] | None = None
    trials: int | None = None  # None: DEFAULT_TRIALS for a new run, the recorded budget otherwise
    timeout: float | None = None
    score: str = "accuracy"
    run_dir: str | None = None
    storage: str | None = None
    run_name: str | None = None
    max_epochs: int = 30
    n_seeds: int = N_SEEDS
    threads: int | None = None
    export: str | None = None
    meta_store: str | None = None  # --meta-store: a folder, a database URL, "none", or None (see open_meta_store)


def check_options(options: RecommendOptions) -> None:
    """Refuse options no run can honour, before anything is loaded or written (one-line InputError)."""
    if options.timeout is not None and not options.timeout > 0:
        raise InputError(f"--timeout must be a positive number of seconds, got {options.timeout:g}")
    if int(options.max_epochs) < 1:
        raise InputError(f"--max-epochs must be at least 1, got {options.max_epochs}")
    if int(options.n_seeds) < 1:
        raise InputError(f"the number of seeds must be at least 1, got {options.n_seeds}")
    if options.threads is not None:
        from advisor.device import check_threads

        check_threads(options.threads)


@dataclass
class StrategyRow:
    """One strategy that ran, baselines included."""

    strategy: str
    family: str
    status: str  # "complete" | "incomplete" | "failed"
    params: dict[str, Any]
    val_score: float | None
    val_accuracy: float | None
    val_ci: list[float] | None
    ntg: float | None
    ntg_ci: list[float] | None
    negative_transfer: bool
    risk: str
    reasons: list[str]
    trials: int
    budget: int
    errors: list[str] = field(default_factory=list)
    role: str = "transfer"  # the strategy's declared role: "reference" | "probe" | "transfer"
    seeds: int = 0  # seed repeats behind val_score, val_ci and the gap
    stopped: dict[str, Any] | None = None  # racing: {"after_trials", "reason"}; None when its budget ran
    warm_start: list[str] = field(default_factory=list)  # meta-store record ids whose settings it tried first
    cv_score: float | None = None  # out-of-fold score on train+val (``advisor.search.crossval``); None: no candidate
    deterministic: bool = False  # its fit is the same for every seed: one fit stands for each seed (no seed spread)


def task_fingerprint(inputs: ResolvedInputs, score_name: str, seed: int, max_epochs: int) -> str:
    """What makes two runs the same task: data, splits, model, score, seed, epochs."""
    doc = {"data": inputs.fingerprints(), "score": score_name, "seed": seed, "max_epochs": max_epochs}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]


def _default_run_name(inputs: ResolvedInputs, request: InputRequest, fp: str) -> str:
    base = inputs.scenario or Path(request.target or "target").stem or "target"
    return f"{base}-{fp[:8]}"


def _versions() -> dict[str, str]:
    import optuna
    import torch

    return {"advisor": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "optuna": optuna.__version__, "numpy": np.__version__}


@dataclass
class PreparedRun:
    """A run ready to work on: where it lives (with its name), its fingerprint, its inputs and task store."""

    location: RunLocation
    name: str
    fingerprint: str
    inputs: ResolvedInputs
    store: TaskStore


def _task_options(options: RecommendOptions) -> dict[str, Any]:
    """The options stored with the run: those that shape trials and the report."""
    return {"score": options.score, "max_epochs": options.max_epochs, "n_seeds": options.n_seeds,
            "strategies": options.strategies, "trials": options.trials}


def _check_outputs(options: RecommendOptions, location: RunLocation | None) -> None:
    """Every place the run writes takes files, checked before any training (one line, exit 2)."""
    if options.export:
        check_export_target(options.export)
    if location is not None:
        location.prepare()
        return
    check_writable(Path(options.run_dir or DEFAULT_RUNS_DIR), "run directory")
    if options.storage and not is_rdb_url(options.storage):
        check_writable(Path(options.storage).expanduser().parent, "journal folder")


def _written_options(options: RecommendOptions) -> dict[str, Any]:
    """The options as config.json records them: no export target, the storage's secrets masked."""
    doc = {k: v for k, v in asdict(options).items() if k != "export"}
    if doc.get("storage"):
        doc["storage"] = mask_url(doc["storage"])
    return doc


def resolve_for_run(request: InputRequest, location: RunLocation | None, registry: Registry) -> ResolvedInputs:
    """The inputs: with the run's stored model when ``--run`` names a stored run, else ``resolve_inputs``.

    A stored run's model is never rebuilt (a GPU and a CPU machine would pretrain different ones).
    """
    if location is not None:
        store = location.task_store()
        stored = store.load(location.run)
        if stored is not None:
            old_model = stored.request.get("model")
            if request.model is not None and request.model != old_model:
                raise InputError(f"run {location.run!r} was created with --model {old_model or '(default)'}, "
                                 f"not {request.model}; drop --model or use another --run")
            return inputs_from_store(request, stored, store, registry)
    return resolve_inputs(request, registry)


def prepare_run(inputs: ResolvedInputs, request: InputRequest, options: RecommendOptions,
                location: RunLocation | None = None) -> PreparedRun:
    """Create or reopen the run: store its task and source model, or use the stored model; refuse a run
    that belongs to another task. ``location`` is the run's place when ``--run`` named it; otherwise it
    is resolved here from the default name."""
    assert inputs.backbone is not None
    fp = task_fingerprint(inputs, options.score, request.seed, options.max_epochs)
    name = options.run_name or _default_run_name(inputs, request, fp)
    loc = location or RunLocation.resolve(options.run_dir, options.storage, name)
    loc.prepare()
    store = loc.task_store()
    stored = store.load(name)
    if stored is None:
        data = model_bytes(inputs.backbone)
        stored = store.create(StoredTask(name, fp, asdict(request), _task_options(options), inputs.fingerprints(),
                                         sha256(data), inputs.pretrained, inputs.model_note), data)
    check_data(name, stored.data_fingerprints, inputs.fingerprints())
    if stored.data_fingerprints.get("model") != inputs.model_fingerprint():
        inputs = with_backbone(inputs, stored_backbone(store, stored), stored.pretrained, stored.model_note)
        fp = task_fingerprint(inputs, options.score, request.seed, options.max_epochs)
    if stored.fingerprint != fp:
        raise InputError(
            f"run {name!r} in {loc.shown_storage} belongs to a different task (fingerprint "
            f"{stored.fingerprint} != {fp}: score, seed or --max-epochs differ); use another --run-dir or --run"
        )
    if loc.config.exists():
        old = read_json(loc.config)
        if old.get("fingerprint") != fp:
            raise InputError(
                f"run {name!r} in {loc.dir} belongs to a different task (fingerprint "
                f"{old.get('fingerprint')} != {fp}); use another --run-dir or --run"
            )
    else:
        write_json(loc.config, {
            "fingerprint": fp, "run": name, "request": asdict(request), "options": _written_options(options),
            "storage": loc.shown_storage, "data_fingerprints": inputs.fingerprints(),
        })
    return PreparedRun(loc, name, fp, inputs, store)


def build_task(inputs: ResolvedInputs, request: InputRequest, score_name: str, max_epochs: int, cache: Any,
               device: str) -> TransferTask:
    """The ``TransferTask`` every process of a run trains on (recommend and workers alike)."""
    assert inputs.backbone is not None
    return TransferTask(
        source=inputs.source, target_train=inputs.splits.train, target_val=inputs.splits.val,
        backbone=inputs.backbone, target_unlabeled=inputs.target_unlabeled, score=score_name,
        device=device, seed=request.seed, max_epochs=max_epochs, cache=cache,
        pretrained=inputs.pretrained,
    )


def recommend(
    request: InputRequest,
    options: RecommendOptions | None = None,
    registry: Registry | None = None,
    on_event: Event | None = None,
) -> dict[str, Any]:
    """Run the whole pipeline and return the report document (see README: JSON schema)."""
    from advisor.device import resolve_device, set_threads

    options = options or RecommendOptions()
    check_options(options)
    emit = on_event or (lambda kind, payload: None)
    if options.score not in SCORES:
        raise InputError(f"unknown score {options.score!r}; known: {', '.join(SCORES)}")
    if options.trials is not None and options.trials < 0:
        raise InputError("--trials must be 0 or more")
    started = time.time()
    reg = registry or get_registry()
    set_threads(options.threads)
    device = resolve_device(request.device)
    request = replace(request, device=device)
    strategies = reg.select_strategies(options.strategies)  # unknown names refused before loading
    if not strategies:  # e.g. the package's entry points are missing (run from a source tree, not installed)
        broken = f"; plugins that failed to load: {', '.join(f.plugin for f in reg.failures)}" if reg.failures else ""
        raise AdvisorFailure("no strategy plugin is registered, so there is nothing to search (install the package, "
                             f"e.g. pip install -e ., so its built-in plugins load{broken})")

    if request.model == "none":
        raise InputError("advisor recommend needs a model; --model none is only for advisor similarity")
    location = RunLocation.resolve(options.run_dir, options.storage, options.run_name) if options.run_name else None
    _check_outputs(options, location)
    inputs = resolve_for_run(request, location, reg)
    if inputs.backbone is None:
        raise InputError("advisor recommend needs a model; --model none is only for advisor similarity")
    run = prepare_run(inputs, request, options, location)
    where, run_name, fp, inputs = run.location, run.name, run.fingerprint, run.inputs
    emit("inputs", {"lines": inputs.describe()})
    emit("run", {"dir": str(where.dir), "storage": where.shown_storage, "run": run_name})

    from advisor.features.cache import FeatureCache
    from advisor.metrics.signals import compute_signals, metric_inputs

    cache = FeatureCache(where.cache, device=device)
    task = build_task(inputs, request, options.score, options.max_epochs, cache, device)
    signals = compute_signals(reg, metric_inputs(
        inputs.source, inputs.splits.train, inputs.splits.val, inputs.target_unlabeled,
        inputs.backbone, cache, device, request.seed,
    ))
    advice = quick_advice(strategies, signals.results, task)
    emit("advice", {"advice": advice.to_json(), "not_applicable": advice.not_applicable,
                    "signals": signals.to_json()})

    doc: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "score": options.score,
        "inputs": inputs.describe(),
        "model_note": inputs.model_note,
        "input": input_description(inputs.backbone, inputs.splits.train),
        "expected": inputs.expected,
        "notes": _notes(inputs, options.score),
        "advice": advice.to_json(),
        "not_applicable": advice.not_applicable,
        "signals": {k: {"value": v.value, "p_value": v.p_value} for k, v in signals.results.items()},
        "signal_details": signals.to_json(),
        "recommendation": None,
        "strategies": [],
        "baselines": {},
        "failed": {},
        "complete": False,
    }
    run_info = {"dir": str(where.dir), "storage": where.shown_storage, "run": run_name, "fingerprint": fp,
                "seed": request.seed, "device": device, "versions": _versions(),
                "data_fingerprints": inputs.fingerprints()}
    if options.trials == 0:
        doc["run"] = {**run_info, "elapsed_s": round(time.time() - started, 2)}
        doc["complete"] = True
        _write_reports(where, doc)
        return doc

    storage = where.optuna_storage()
    by_name = {s.name: s for s in strategies}
    order = [by_name[r.strategy] for r in advice.ranking]
    states = []
    for s in order:
        study = make_study(storage, run_name, s, task, request.seed)
        budget = raise_budget(study, options.trials if options.trials is not None
                              else (get_budget(study) or DEFAULT_TRIALS))
        states.append(SearchState(s, study, budget))
    if any(not st.study.trials for st in states):  # new studies start from similar past tasks' best settings
        from advisor.runs.metastore import MetaStoreError, read_records
        from advisor.search.warmstart import plan

        try:  # a store that cannot be read costs the warm start, never the run; the report says so
            records = read_records(options.meta_store, where.storage)
        except MetaStoreError as exc:
            records = []
            doc["notes"].append(f"no warm start: the meta-store could not be read ({exc})")
        warm = plan([st.strategy for st in states if not st.study.trials], task, advice.evidence,
                    inputs.splits.train.kind, records)
        for st in states:
            st.warm_start = warm.get(st.strategy.name, [])
    run.store.add_strategies(run_name, [st.strategy.name for st in states])  # workers may join from here
    emit("search_start", {"total": sum(st.budget for st in states),
                          "done": sum(min(finished_trials(st.study), st.budget) for st in states)})
    deadline = time.time() + options.timeout if options.timeout else None
    all_done = run_search(states, task, deadline,
                          on_trial=lambda st, tr: emit("trial", {"strategy": st.strategy.name,
                                                                 "number": tr.number,
                                                                 "state": tr.state.name,
                                                                 "value": tr.value}))
    emit("search_end", {"complete": all_done})
    # Finalise only once no trial of the run is RUNNING (other workers finish theirs; dead ones are reaped).
    wait_for_running(states, deadline)
    result = finalize(task, inputs, states, advice, options, emit)
    doc.update(result)
    doc["complete"] = all_done
    doc["run"] = {**run_info, "elapsed_s": round(time.time() - started, 2)}
    from advisor.runs.metastore import record_run  # the meta-store learns from every finished run

    meta = record_run(options.meta_store, doc, inputs, request, strategies, storage=where.storage)
    doc["run"].update(meta.run_fields())
    if meta.note:
        doc["notes"].append(meta.note)
    _write_reports(where, doc)
    return doc


def _notes(inputs: ResolvedInputs, score_name: str) -> list[str]:
    notes = []
    counts = [n for n in inputs.splits.train.concat(inputs.splits.val).class_counts().values() if n]
    if score_name == "accuracy" and counts and max(counts) > 1.5 * min(counts):
        notes.append(f"classes are imbalanced ({min(counts)} to {max(counts)} labelled samples per class) "
                     "and the score is accuracy; consider --score balanced_accuracy or macro_f1")
    return notes


def _write_reports(location: RunLocation, doc: dict[str, Any]) -> None:
    """report.json and report.md, each written to a temporary file and renamed."""
    from advisor.report.render import render_markdown

    public = {k: v for k, v in doc.items() if not k.startswith("_")}
    write_json(location.report_json, public)
    atomic_write_text(location.report_md, render_markdown(public))


def _ranked_trials(study: Any) -> list[Any]:
    """Completed trials with a value, best first (ties: the earlier trial)."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.value is not None]
    return sorted(done, key=lambda t: (-t.value, t.number))


def _best_trial(study: Any) -> Any | None:
    ranked = _ranked_trials(study)
    return ranked[0] if ranked else None


def trial_params(trial: Any) -> dict[str, Any]:
    """The parameters a trial's fit used (suggested and fixed ones, e.g. the batch size)."""
    stored = trial.user_attrs.get("params")
    return {**stored, **trial.params} if isinstance(stored, dict) else dict(trial.params)


#: How many of a reference candidate's best trials are screened with seed repeats before one is kept.
REFERENCE_CANDIDATES = 3
#: Seeds each screened reference setting gets before the best mean is kept (the winner then gets them all).
REFERENCE_SCREEN_SEEDS = 2
#: Seed repeats of a strategy the race stopped (out of contention with the leader): enough for a seed
#: spread in its gap's interval; the strategies still in contention and the references get ``n_seeds``.
RACED_OUT_SEEDS = 3
#: Repeat ``r`` of a setting trains with seed ``task.seed + SEED_STEP * r``.
SEED_STEP = 1000


@dataclass
class SeedRepeats:
    """A strategy's best setting and its validation predictions over fresh seeds (seeds x n).

    ``params`` are what the retrain on train+val uses (the best epoch included); ``preds`` is
    ``None`` when the strategy has no completed trial or its repeats failed (``error``).
    """

    trial: Any | None
    params: dict[str, Any]
    preds: np.ndarray | None
    error: str | None = None


def _seed_predictions(strategy: Any, task: TransferTask, params: dict[str, Any], n_seeds: int,
                      first: int = 1) -> np.ndarray:
    """Validation predictions of one setting refitted with ``n_seeds`` fresh seeds (seeds x n).

    The seeds are ``task.seed + SEED_STEP * r`` for r = first..first+n-1 (``first`` >= 1): the search's
    own fit (r = 0) is not among them, because that fit's validation score is what made the trial win
    (winner's curse).
    """
    preds = [strategy.fit(replace(task, seed=task.seed + SEED_STEP * r), dict(params), None).val_pred
             for r in range(first, first + _fits_for(strategy, n_seeds))]
    return _every_seed(np.stack([np.asarray(p, dtype=np.int64) for p in preds]), n_seeds)


def _fits_for(strategy: Any, n_seeds: int) -> int:
    """Fits that ``n_seeds`` seeds of one setting need: one for a deterministic strategy (same fit on every seed)."""
    return 1 if is_deterministic(strategy) else max(1, n_seeds)


def _every_seed(preds: np.ndarray, n_seeds: int) -> np.ndarray:
    """Predictions (fits x n) as one row per seed: a deterministic strategy's single fit stands for each seed."""
    n = max(1, n_seeds)
    return np.repeat(preds[:1], n, axis=0) if len(preds) < n else preds


def _select_reference(strategy: Any, task: TransferTask, study: Any, n_seeds: int,
                      score_name: str) -> tuple[Any, np.ndarray] | None:
    """A reference candidate's setting chosen by its mean over seeds, not by one seed's luck.

    Every gap and the verdict compare against the reference, and on a small validation split its
    best single-seed trials are often tied within a sample or two while their retrains differ by
    many points. So its ``REFERENCE_CANDIDATES`` best trials are each repeated with
    ``REFERENCE_SCREEN_SEEDS`` seeds, the best mean wins (racing/intensification), and only the winner is
    repeated with the remaining seeds.
    Returns (trial, predictions per seed) or ``None`` without trials.
    """
    y_val = task.target_val.y
    # a deterministic fit repeats its trial's score on every seed: screening would only reproduce the ranking
    candidates = _ranked_trials(study)[:1 if is_deterministic(strategy) else REFERENCE_CANDIDATES]
    screen = min(n_seeds, REFERENCE_SCREEN_SEEDS) if len(candidates) > 1 else n_seeds
    best: tuple[float, Any, np.ndarray] | None = None
    for t in candidates:
        p = _seed_predictions(strategy, task, trial_params(t), screen)
        m = float(np.mean([score(score_name, y_val, q) for q in p]))
        if best is None or m > best[0]:
            best = (m, t, p)
    if best is None:
        return None
    _, trial, preds = best
    if len(preds) < n_seeds:  # the survivor gets the rest of its seeds (the same seeds as every other arm)
        more = _seed_predictions(strategy, task, trial_params(trial), n_seeds - len(preds), first=len(preds) + 1)
        preds = np.concatenate([preds, more])
    return trial, preds


def _repeat(st: SearchState, task: TransferTask, n_seeds: int, score_name: str, emit: Event) -> SeedRepeats:
    """The best setting of one strategy and its seed repeats on validation (a reference: raced, see above)."""
    selected = None
    if st.strategy.role == REFERENCE_ROLE:
        try:
            selected = _select_reference(st.strategy, task, st.study, n_seeds, score_name)
        except Exception:  # noqa: BLE001 - fall back to the best trial; its repeats report the error
            selected = None
    trial = selected[0] if selected is not None else _best_trial(st.study)
    if trial is None:
        return SeedRepeats(None, {}, None)
    params = trial_params(trial)
    if "epochs" in trial.user_attrs:  # the best epoch: what the retrain on train+val trains for
        params["epochs"] = int(trial.user_attrs["epochs"])
    emit("repeat", {"strategy": st.strategy.name})
    if selected is not None:
        return SeedRepeats(trial, params, selected[1])
    if stopped(st.study) is not None and st.strategy.role != REFERENCE_ROLE:
        n_seeds = min(n_seeds, RACED_OUT_SEEDS)
    try:
        return SeedRepeats(trial, params, _seed_predictions(st.strategy, task, trial_params(trial), n_seeds))
    except Exception as exc:  # noqa: BLE001 - a strategy's failure is reported, the others go on
        return SeedRepeats(trial, params, None, f"seed repeats failed: {type(exc).__name__}: {exc}")


def best_transfer(candidates: list[StrategyRow], prior_order: list[str], n_val: int) -> StrategyRow:
    """The row ``advisor.verdict.pick_best`` picks by validation score (ties within a sample: the prior)."""
    name = pick_best({r.strategy: r.val_score or 0.0 for r in candidates}, prior_order, n_val)
    return next(r for r in candidates if r.strategy == name)


#: Below this fraction of the source rows, importance weights rest on too few samples.
LOW_ESS_FRACTION = 0.1


def _fit_reasons(info: dict[str, Any]) -> list[str]:
    """Risk reasons read from what the best trial's fit reported (e.g. the effective sample size)."""
    reasons = []
    frac = info.get("ess_fraction")
    if isinstance(frac, int | float) and frac < LOW_ESS_FRACTION:
        reasons.append(f"the importance weights' effective sample size is {info.get('ess', 0):.0f} rows, "
                       f"{frac:.1%} of the source: the source term rests on a few rows")
    return reasons


def _row(st: SearchState, rep: SeedRepeats, advice_row: Any, score_name: str, y_val: np.ndarray,
         seed: int) -> StrategyRow:
    """The report row of one strategy: its status, and its seed-repeat score with an interval over seeds and
    samples (the gap is filled in later)."""
    a, name, done = advice_row, st.strategy.name, finished_trials(st.study)
    stop = stopped(st.study)
    if rep.trial is None:
        return StrategyRow(name, st.strategy.family, "failed" if st.failed else "incomplete", {}, None, None, None,
                           None, None, False, a.risk, list(a.reasons), done, st.budget, st.errors[-3:],
                           st.strategy.role, 0, stop, warm_started(st.study))
    status = "failed" if st.failed else "complete" if done >= st.budget or stop else "incomplete"
    val, vacc, ci, seeds = rep.trial.value, None, None, 0
    if rep.preds is not None:
        est = seed_sample_ci(score_name, y_val, rep.preds, seed=seed)
        (val, ci), seeds = est.rounded(), len(rep.preds)
        vacc = float(seed_scores("accuracy", y_val, rep.preds).mean())
    return StrategyRow(name, st.strategy.family, status, rep.params, val, vacc, ci, None, None, False, a.risk,
                       list(a.reasons) + _fit_reasons(rep.trial.user_attrs.get("info", {})), done, st.budget,
                       st.errors[-3:], st.strategy.role, seeds, stop, warm_started(st.study),
                       deterministic=is_deterministic(st.strategy))


def _apply_gap(row: StrategyRow, gap: Gap, score_name: str) -> None:
    """Write a gap into its row; negative transfer makes the risk high, a reference ahead at least medium."""
    from advisor.report.render import gap_reason

    row.ntg, row.ntg_ci = gap.estimate.rounded()
    row.negative_transfer = gap.negative_transfer
    reason = gap_reason(gap, score_name)
    if gap.negative_transfer:
        row.reasons.insert(0, reason or "")
        row.risk = "high"
    elif reason:
        row.reasons.append(reason)
        if row.risk == "low":
            row.risk = "medium"


def _failures(states: list[SearchState], repeats: dict[str, SeedRepeats]) -> dict[str, str]:
    """Per strategy, the last error of a failed search or of its seed repeats."""
    failed: dict[str, str] = {}
    for st in states:
        name, rep = st.strategy.name, repeats[st.strategy.name]
        if rep.trial is None and (st.failed or st.errors):
            failed[name] = st.errors[-1] if st.errors else "no trial completed"
        elif rep.error:
            failed[name] = rep.error
        elif st.failed:
            failed[name] = st.errors[-1] if st.errors else "failed"
    return failed


def _retrain(strategy: Any, task: TransferTask, params: dict[str, Any], n_seeds: int,
             test: Any, start: int = 0) -> tuple[Any, np.ndarray]:
    """Retrain on train+val with ``n_seeds`` seeds (``task.seed + SEED_STEP * r``, r = start..start+n-1) and
    predict the test split once per seed: one retrain's luck must not decide the verdict. Returns the first
    seed's model (r = 0: the one exported; None when ``start`` > 0) and the predictions (seeds x n).
    A deterministic strategy is fitted once and its predictions stand for every seed."""
    from advisor.search.training import predict

    full = replace(task, target_train=task.target_train.concat(task.target_val, name="target/train+val"),
                   target_val=None)
    first, preds = None, []
    for r in range(start, start + _fits_for(strategy, n_seeds)):
        fit = strategy.fit(replace(full, seed=task.seed + SEED_STEP * r), dict(params), None)
        first = fit.model if r == 0 else first
        preds.append(predict(fit.model, test.X, task.device))
    return first, _every_seed(np.stack(preds), n_seeds)


def _recommendation(v: Verdict, rows: dict[str, StrategyRow], params: dict[str, Any], test_pred: np.ndarray,
                    y_test: np.ndarray) -> dict[str, Any]:
    """The ``recommendation`` block of the report: the chosen strategy, the verdict and its evidence."""
    from advisor.report.render import verdict_sentence

    row = rows[v.chosen]
    gain, gain_ci = v.gain.rounded()
    return {
        "strategy": v.chosen,
        "family": row.family,
        "role": row.role,
        "params": params,
        "best_transfer_strategy": v.best_transfer,
        "reference": v.reference,
        "val_score": row.val_score,
        "val_ci": row.val_ci,
        # The exported model's own scores (the first retrain); the gain averages every retrain.
        "test_score": round(score(v.score, y_test, test_pred[0]), 4),
        "test_accuracy": round(score("accuracy", y_test, test_pred[0]), 4),
        "test_score_mean": round(v.transfer_test if v.chosen == v.best_transfer else v.reference_test, 4),
        "reference_test_score_mean": round(v.reference_test, 4),
        "test_retrains": int(test_pred.shape[0]),
        "test_gain": gain,
        "test_gain_ci": gain_ci,
        "test_gain_seeds": list(v.gain.seeds),
        "test_gain_covers": v.gain.covers,
        "test_gain_level": v.gain.level,
        "test_gain_looks": v.looks,
        "test_size": v.test_size,
        "verdict": verdict_sentence(v),
        "verdict_code": v.code,
        "risk": row.risk,
        "reasons": row.reasons,
    }


def _full_rows(task: TransferTask) -> int:
    """Rows of train+val: what the retrains and the cross-validation's folds are drawn from."""
    return len(task.target_train) + (len(task.target_val) if task.target_val is not None else 0)


def _cross_validate_candidates(states: list[SearchState], repeats: dict[str, SeedRepeats], task: TransferTask,
                               emit: Event) -> dict[str, CrossVal]:
    """Out-of-fold predictions on train+val (``advisor.search.crossval``) of each candidate for B or the reference.

    Candidates: every strategy with seed repeats, the ones the race stopped included: the race compares
    validation scores at the search's size, and a strategy that trailed there can lead at the retrain's
    (replayed on the harness's runs, ``bench/crossval_pick.py``: B's test regret was lower with every strategy
    a candidate than with the race's survivors only). A candidate whose folds fail is left out (its validation
    row and gap stay); the pick falls back to validation when a group has no cross-validated candidate.
    """
    out: dict[str, CrossVal] = {}
    for st in states:
        name, rep = st.strategy.name, repeats[st.strategy.name]
        if rep.preds is None:
            continue
        emit("crossval", {"strategy": name, "folds": CV_FOLDS})
        try:
            out[name] = cross_validate(st.strategy, task, rep.params, SEED_STEP)
        except Exception:  # noqa: BLE001 - this candidate is picked by validation alone
            continue
    return out


@dataclass(frozen=True)
class Pick:
    """B or the reference, the scores it was picked on, the tie band used, and how (``crossval``/``validation``)."""

    name: str | None
    scores: dict[str, float]
    band: float
    method: str


def _pick(group: str, means: dict[str, float], cv: dict[str, float], roles: dict[str, str], prior: list[str],
          task: TransferTask, preds: dict[str, np.ndarray], score_name: str) -> Pick:
    """The reference (``group`` = the reference role) or B (any other) by cross-validation, else by validation.

    Cross-validated scores: ties within one row of train+val go to the quick advice. Validation (no candidate
    of the group cross-validated): ties within one standard error of the leader, seeds and samples.
    """
    choose = choose_reference if group == REFERENCE_ROLE else choose_transfer
    in_group = {n for n in roles if (roles[n] == REFERENCE_ROLE) == (group == REFERENCE_ROLE)}
    mine = {n: v for n, v in cv.items() if n in in_group}
    if mine:
        n_full = _full_rows(task)
        return Pick(choose(mine, roles, prior, n_full), mine, 1.0 / n_full, "crossval")
    y_val = task.target_val.y
    band = max(tie_band(score_name, y_val, preds, [n for n in means if n in in_group], task.seed),
               1.0 / max(len(y_val), 1))
    return Pick(choose(means, roles, prior, len(y_val), band), means, band, "validation")


def finalize(task: TransferTask, inputs: ResolvedInputs, states: list[SearchState], advice: Advice,
             options: RecommendOptions, emit: Event) -> dict[str, Any]:
    """Seed repeats -> cross-validation -> reference -> gaps -> B -> retrains -> decide (rules: ``advisor.verdict``)."""
    y_val, seed = task.target_val.y, task.seed
    prior = [r.strategy for r in advice.ranking]
    advice_rows = {r.strategy: r for r in advice.ranking}
    roles = {st.strategy.name: st.strategy.role for st in states}
    repeats = {st.strategy.name: _repeat(st, task, options.n_seeds, options.score, emit) for st in states}
    rows = {st.strategy.name: _row(st, repeats[st.strategy.name], advice_rows[st.strategy.name], options.score,
                                   y_val, seed) for st in states}
    preds = {name: rep.preds for name, rep in repeats.items() if rep.preds is not None}
    means = mean_scores(options.score, y_val, preds)
    # B and the reference are picked at the retrain's size: cross-validated on train+val (_cross_validate_candidates)
    folds = _cross_validate_candidates(states, repeats, task, emit)
    cv = {name: float(score(options.score, f.y, f.pred)) for name, f in folds.items()}
    for name, value in cv.items():
        rows[name].cv_score = round(value, 4)
    ref_pick = _pick(REFERENCE_ROLE, means, cv, roles, prior, task, preds, options.score)
    b_pick = _pick("transfer", means, cv, roles, prior, task, preds, options.score)
    reference = ref_pick.name
    if reference is not None:
        for name, gap in gaps(options.score, y_val, reference, preds, roles, seed).items():
            _apply_gap(rows[name], gap, options.score)
    out_rows = sorted(rows.values(), key=lambda r: (r.val_score is None, -(r.val_score or 0), r.strategy))
    result: dict[str, Any] = {
        "strategies": [asdict(r) for r in out_rows],
        "failed": _failures(states, repeats),
        "baselines": {r.strategy: asdict(r) for r in out_rows if r.role == REFERENCE_ROLE},
        "intervals": {"level": 0.95, "seeds": options.n_seeds,
                      "raced_out_seeds": min(options.n_seeds, RACED_OUT_SEEDS),
                      "verdict_level": LOOK_LEVEL, "verdict_max_seeds": 2 * options.n_seeds,
                      "covers": COVERS_SEEDS if options.n_seeds >= 2 else COVERS_SAMPLES},
    }
    b = b_pick.name
    if reference is None or b is None:
        result["recommendation"] = None
        result["verdict_missing"] = ("no verdict: no reference strategy or no other strategy has completed trials "
                                     "and seed repeats yet")
        return result
    emit("final", {"strategy": b, "reference": reference})
    test = inputs.splits.test
    by_name = {st.strategy.name: st.strategy for st in states}
    models, test_pred = {}, {}
    for name in (b, reference):
        models[name], test_pred[name] = _retrain(by_name[name], task, repeats[name].params, options.n_seeds, test)
    # under no_gain B only when it leads on the scores both were picked by (by more than one SE when cross-validated)
    no_gain_rule: dict[str, Any] = {"basis": "validation"}
    picked_on = (means[b], means[reference])
    if b_pick.method == ref_pick.method == "crossval":
        picked_on = (cv[b], cv[reference])
        no_gain_rule = {"basis": "cross-validation on train+val",
                        "margin": paired_se(options.score, folds[b], folds[reference], seed)}
    v = decide(options.score, test.y, b, test_pred[b], reference, test_pred[reference], *picked_on, seed,
               **no_gain_rule)
    if worth_another_look(v):  # a promising gain the first look could not separate from seed luck
        emit("final", {"strategy": b, "reference": reference, "look": 2})
        for name in (b, reference):
            _, more = _retrain(by_name[name], task, repeats[name].params, options.n_seeds, test,
                               start=len(test_pred[name]))
            test_pred[name] = np.concatenate([test_pred[name], more])
        v = decide(options.score, test.y, b, test_pred[b], reference, test_pred[reference], *picked_on, seed,
                   looks=2, **no_gain_rule)
    result["recommendation"] = _recommendation(v, rows, repeats[v.chosen].params, test_pred[v.chosen], test.y)
    # B won a tie (within the band of the leader) by the quick advice's order, not by the top score
    result["recommendation"]["tie_broken"] = transfer_tie_broken(b_pick.scores, roles, b)
    result["recommendation"]["tie_band"] = round(b_pick.band, 4)
    result["recommendation"]["reference_tie_band"] = round(ref_pick.band, 4)
    result["recommendation"]["selected_by"] = {"b": b_pick.method, "reference": ref_pick.method,
                                               "crossval_folds": CV_FOLDS, "crossval_rows": _full_rows(task),
                                               "no_gain_margin": round(v.margin, 4)}
    result["_internal"] = {"models": models, "classes": task.classes}  # for --export
    return result
