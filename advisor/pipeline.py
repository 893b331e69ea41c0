"""The recommendation pipeline (DESIGN.md §2, §5, §6): inputs -> advice -> search -> verdict.

``recommend(request, options)`` is the Python API behind ``advisor recommend``. The target
test split is used exactly once, at the end, to score the best strategy B and
``target_only``, both retrained on train+val with their best parameters.
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
from advisor.errors import InputError
from advisor.models.inputs import InputRequest, ResolvedInputs, resolve_inputs
from advisor.plugin.contracts import TransferTask
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
from advisor.search.scoring import SCORES, bootstrap_ci, paired_bootstrap_diff, score
from advisor.search.study import (
    DEFAULT_TRIALS,
    SearchState,
    finished_trials,
    get_budget,
    make_study,
    raise_budget,
    run_search,
    wait_for_running,
)

#: Seeds of the best setting per strategy used for intervals (the search's own trial is seed 0).
N_SEEDS = 3
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


#: How many of the reference baseline's best trials are re-run with every seed before one is kept.
REFERENCE_CANDIDATES = 3
REFERENCE = "target_only"


def _select_reference(strategy: Any, task: TransferTask, study: Any, n_seeds: int,
                      score_name: str) -> tuple[Any, np.ndarray] | None:
    """The reference baseline's setting chosen by its mean over seeds, not by one seed's luck.

    Every negative-transfer gap and the verdict compare against ``target_only``, and on a small
    validation split its best single-seed trials are often tied within a sample or two while
    their retrains differ by many points. So its ``REFERENCE_CANDIDATES`` best trials are each
    repeated with every seed (cheap: it has no source term) and the best mean wins, as in
    racing/intensification. Returns (trial, predictions per seed) or ``None`` without trials.
    """
    y_val = task.target_val.y
    best: tuple[float, Any, np.ndarray] | None = None
    for t in _ranked_trials(study)[:REFERENCE_CANDIDATES]:
        p = _seed_predictions(strategy, task, trial_params(t), t, n_seeds)
        m = float(np.mean([score(score_name, y_val, q) for q in p]))
        if best is None or m > best[0]:
            best = (m, t, p)
    return None if best is None else (best[1], best[2])


def _seed_predictions(strategy: Any, task: TransferTask, params: dict[str, Any], trial: Any,
                      n_seeds: int) -> np.ndarray:
    """Validation predictions of the best setting for ``n_seeds`` seeds (the trial is seed 0)."""
    preds = []
    stored = trial.user_attrs.get("val_pred")
    if stored is not None:
        preds.append(np.asarray(stored, dtype=np.int64))
    r = 1
    while len(preds) < n_seeds:
        fit = strategy.fit(replace(task, seed=task.seed + 1000 * r), dict(params), None)
        preds.append(np.asarray(fit.val_pred, dtype=np.int64))
        r += 1
    return np.stack(preds)


def best_transfer(candidates: list[StrategyRow], prior_order: list[str], n_val: int) -> StrategyRow:
    """B, the transfer strategy the verdict tests: the best validation score, ties to the prior.

    Scores less than one validation sample apart (``1 / n_val``: a single flipped prediction)
    are not evidence, so such strategies are tied and the one the quick advice ranked higher
    wins (not the alphabet).
    """
    top = max(r.val_score or 0.0 for r in candidates)
    tied = [r for r in candidates if (r.val_score or 0.0) > top - 1.0 / max(n_val, 1) + 1e-12]
    rank = {name: i for i, name in enumerate(prior_order)}
    return min(tied, key=lambda r: (rank.get(r.strategy, len(rank)), -(r.val_score or 0.0), r.strategy))


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


def finalize(task: TransferTask, inputs: ResolvedInputs, states: list[SearchState], advice: Advice,
             options: RecommendOptions, emit: Event) -> dict[str, Any]:
    """Seed repeats, negative-transfer gaps, the verdict on the test split, and the rows."""
    from advisor.search.training import predict

    y_val = task.target_val.y
    advice_rows = {r.strategy: r for r in advice.ranking}
    preds: dict[str, np.ndarray] = {}
    rows: dict[str, StrategyRow] = {}
    failed: dict[str, str] = {}
    best_params: dict[str, dict[str, Any]] = {}
    for st in states:
        name = st.strategy.name
        reference = None
        if name == REFERENCE:
            try:
                reference = _select_reference(st.strategy, task, st.study, options.n_seeds, options.score)
            except Exception:  # noqa: BLE001 - fall back to the best trial; its repeat reports the error
                reference = None
        trial = reference[0] if reference is not None else _best_trial(st.study)
        a = advice_rows[name]
        if trial is None:
            if st.failed or st.errors:
                failed[name] = st.errors[-1] if st.errors else "no trial completed"
            rows[name] = StrategyRow(name, st.strategy.family, "failed" if st.failed else "incomplete", {},
                                     None, None, None, None, None, False, a.risk, list(a.reasons),
                                     finished_trials(st.study), st.budget, st.errors[-3:])
            continue
        params = trial_params(trial)
        if "epochs" in trial.user_attrs:  # the best epoch: what the retrain on train+val trains for
            params["epochs"] = int(trial.user_attrs["epochs"])
        best_params[name] = params
        emit("repeat", {"strategy": name})
        try:
            preds[name] = (reference[1] if reference is not None
                           else _seed_predictions(st.strategy, task, trial_params(trial), trial, options.n_seeds))
        except Exception as exc:
            failed[name] = f"seed repeats failed: {type(exc).__name__}: {exc}"
            preds[name] = np.asarray([trial.user_attrs["val_pred"]]) if "val_pred" in trial.user_attrs \
                else None
        p = preds[name]
        val = float(np.mean([score(options.score, y_val, q) for q in p])) if p is not None else trial.value
        vacc = float(np.mean([score("accuracy", y_val, q) for q in p])) if p is not None else None
        ci = list(bootstrap_ci(options.score, y_val, p, seed=task.seed)) if p is not None else None
        status = "complete" if finished_trials(st.study) >= st.budget else "incomplete"
        if st.failed:
            status = "failed"
            failed.setdefault(name, st.errors[-1] if st.errors else "failed")
        rows[name] = StrategyRow(name, st.strategy.family, status, params, val, vacc, ci, None, None, False,
                                 a.risk, list(a.reasons) + _fit_reasons(trial.user_attrs.get("info", {})),
                                 finished_trials(st.study), st.budget, st.errors[-3:])
    # Negative-transfer gaps against target_only (paired over validation samples, seeds pooled).
    ref = preds.get("target_only")
    for name, row in rows.items():
        if ref is None or preds.get(name) is None or name == "target_only":
            continue
        ntg, lo, hi = paired_bootstrap_diff(options.score, y_val, ref, preds[name], seed=task.seed)
        row.ntg, row.ntg_ci = round(ntg, 4), [round(lo, 4), round(hi, 4)]
        row.negative_transfer = lo > 0
        if row.negative_transfer:
            row.reasons.insert(0, f"negative transfer measured: {options.score} is {ntg:.3f} below target_only "
                                  f"on validation (95% CI [{lo:.3f}, {hi:.3f}])")
            row.risk = "high"
        elif hi > 0 and ntg > 0:
            row.reasons.append(f"no clear gain over target_only on validation (gap {ntg:+.3f}, "
                               f"95% CI [{lo:.3f}, {hi:.3f}])")
            if row.risk == "low":
                row.risk = "medium"
    out_rows = sorted(rows.values(), key=lambda r: (r.val_score is None, -(r.val_score or 0), r.strategy))
    result: dict[str, Any] = {
        "strategies": [asdict(r) for r in out_rows],
        "failed": failed,
        "baselines": {"target_only": asdict(rows["target_only"])} if "target_only" in rows else {},
    }
    candidates = [r for r in out_rows if r.strategy != "target_only" and r.val_score is not None]
    if ref is None or not candidates:
        result["recommendation"] = None
        result["verdict_missing"] = ("no verdict: target_only or every transfer strategy has no completed "
                                     "trial yet")
        return result
    b = best_transfer(candidates, [r.strategy for r in advice.ranking], len(y_val))
    emit("final", {"strategy": b.strategy})
    test = inputs.splits.test
    full = replace(task, target_train=task.target_train.concat(task.target_val, name="target/train+val"),
                   target_val=None)
    strategies = {st.strategy.name: st.strategy for st in states}
    models: dict[str, Any] = {}
    test_pred: dict[str, np.ndarray] = {}
    for name in (b.strategy, "target_only"):
        # Retrain with the same seeds as the validation repeats: one retrain's luck must not decide
        # the verdict. The first seed's model is the one exported.
        preds = []
        for r in range(max(1, options.n_seeds)):
            fit = strategies[name].fit(replace(full, seed=task.seed + 1000 * r), dict(best_params[name]), None)
            if r == 0:
                models[name] = fit.model
            preds.append(predict(fit.model, test.X, task.device))
        test_pred[name] = np.stack(preds)
    g, lo, hi = paired_bootstrap_diff(options.score, test.y, test_pred[b.strategy], test_pred["target_only"],
                                      seed=task.seed)
    on_test = f"on the held-out test split (mean of {test_pred[b.strategy].shape[0]} retrains on train+val)"
    b_test = float(np.mean([score(options.score, test.y, p) for p in test_pred[b.strategy]]))
    t_test = float(np.mean([score(options.score, test.y, p) for p in test_pred["target_only"]]))
    ref_row = rows["target_only"]
    if lo > 0:
        code, chosen = "transfer_helps", b.strategy
        verdict = (f"Transfer helps: {b.strategy} scores {b_test:.3f} {on_test} against "
                   f"{t_test:.3f} for training on the target alone ({options.score}, gain {g:+.3f}, "
                   f"95% CI [{lo:+.3f}, {hi:+.3f}]). Use {b.strategy}.")
    elif hi < 0:
        code, chosen = "transfer_hurts", "target_only"
        verdict = (f"Transfer hurts: the best transfer strategy, {b.strategy}, scores {b_test:.3f} {on_test} "
                   f"against {t_test:.3f} for training on the target alone "
                   f"(gain {g:+.3f}, 95% CI [{lo:+.3f}, {hi:+.3f}]). Train on the target alone.")
    else:
        chosen = b.strategy if (b.val_score or 0) > (ref_row.val_score or 0) else "target_only"
        code = "no_gain"
        verdict = (f"Transfer gives little or nothing: {b.strategy} scores {b_test:.3f} {on_test} "
                   f"against {t_test:.3f} for the target alone (gain {g:+.3f}, 95% CI "
                   f"[{lo:+.3f}, {hi:+.3f}] includes zero). {chosen} is the better of the two on validation.")
    chosen_row = rows[chosen]
    result["recommendation"] = {
        "strategy": chosen,
        "family": chosen_row.family,
        "params": best_params[chosen],
        "best_transfer_strategy": b.strategy,
        "val_score": chosen_row.val_score,
        "val_ci": chosen_row.val_ci,
        # The exported model's own scores (the first retrain); the gain averages every retrain.
        "test_score": round(score(options.score, test.y, test_pred[chosen][0]), 4),
        "test_accuracy": round(score("accuracy", test.y, test_pred[chosen][0]), 4),
        "test_score_mean": round(b_test if chosen == b.strategy else t_test, 4),
        "test_retrains": int(test_pred[chosen].shape[0]),
        "test_gain": round(g, 4),
        "test_gain_ci": [round(lo, 4), round(hi, 4)],
        "test_size": len(test),
        "verdict": verdict,
        "verdict_code": code,
        "risk": chosen_row.risk,
        "reasons": chosen_row.reasons,
    }
    result["_internal"] = {"models": models, "classes": task.classes}  # for --export
    return result
