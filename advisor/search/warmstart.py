"""Warm starts: each new study first tries the best settings of the most similar past tasks in the meta-store.

Past runs (``advisor.runs.metastore``) store their evidence vector and each strategy's best setting. Before TPE
proposes anything, a new study enqueues, after the strategy's default, up to ``MAX_PER_STUDY`` of those settings:

- **similar**: records of the same data kind, nearest first by the root-mean-square difference of the evidence
  values both hold, each value standardised by its mean and spread over the candidate records (ties: record id);
- **close** (optional): a record farther than ``max_distance`` is ignored (default: none is, see ``MAX_DISTANCE``);
- **the same strategy**: the record's best setting of this very strategy (a record where it failed or has no
  validation score is skipped);
- **the current search space**: the setting is replayed through the strategy's own ``search_space`` on a
  throwaway trial; it is kept only when every name that space suggests gets a value from the record (or, for a
  name the record lacks, the strategy's current default: what the record's run used when that knob did not exist
  or was not tuned), every value lies inside its distribution, and every parameter the record holds is either
  suggested or a fixed default of the strategy (a record from another version of the space is skipped);
- **new**: a setting within ``NEAR`` of the default or of one already kept, in the normalised space (each
  suggested parameter mapped to [0, 1] of its range, on a log scale where the space searches one; a categorical
  or conditional difference counts 1), is skipped: a near-duplicate spends a trial to learn nothing.

Records whose target domain is the current task's are used: that is the user's own history of this data.
Nothing here trains; a strategy whose ``search_space`` or ``default_params`` raises simply gets no warm start.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from advisor.plugin.contracts import BOOKKEEPING_PARAMS, Strategy, TransferTask

#: Settings of past tasks enqueued per study (after the default, before TPE).
MAX_PER_STUDY = 2
#: Study attribute: the record ids whose settings were enqueued, in order.
WARM_START_ATTR = "warm_start"
#: Trial attribute of an enqueued warm-start setting: its record id.
TRIAL_ATTR = "warm_start_record"
#: Farthest evidence distance (standardised RMS, see ``distances``) of a past task whose setting is tried. None by
#: default: a cutoff at 1.0 (one spread of the store on every value) made warm searches hurt less often on the 12
#: Office scenarios of ``bench.bench_warmstart`` but lowered their mean best score after every k of 2-6 trials
#: (0.543-0.573 against 0.546-0.575 without it), so the nearest record's setting is tried however far it is.
MAX_DISTANCE = math.inf
#: Fewest records holding an evidence value for its spread to standardise it (``distances``).
MIN_SPREAD_RECORDS = 5
#: Settings closer than this in the normalised space (``setting_distance``) are the same trial for a warm start.
NEAR = 0.1


@dataclass(frozen=True)
class WarmSetting:
    """One past task's best setting of a strategy, ready to enqueue (suggested names only)."""

    record: str
    distance: float
    params: dict[str, Any]


def _numeric(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(float(value)):
        return None
    return float(value)


def distances(evidence: dict[str, Any], records: list[dict[str, Any]]) -> list[float | None]:
    """Each record's distance to ``evidence``: RMS of standardised differences over the values both hold.

    A value is standardised by its standard deviation over the records holding it; with no spread, or fewer than
    ``MIN_SPREAD_RECORDS`` such records (a spread two or three records show is an accident that would make every
    difference look large against ``MAX_DISTANCE``), by 1. A record sharing no value with ``evidence`` gets
    ``None``.
    """
    names = sorted(k for k, v in evidence.items() if _numeric(v) is not None)
    stats: dict[str, tuple[float, float]] = {}
    for name in names:
        vals = [v for r in records if (v := _numeric(r.get("evidence", {}).get(name))) is not None]
        if vals:
            sd = float(np.std(vals))
            stats[name] = (float(np.mean(vals)), sd if sd > 1e-9 and len(vals) >= MIN_SPREAD_RECORDS else 1.0)
    out: list[float | None] = []
    for r in records:
        diffs = []
        for name, (_, sd) in stats.items():
            v = _numeric(r.get("evidence", {}).get(name))
            if v is not None:
                diffs.append((v - float(evidence[name])) / sd)
        out.append(math.sqrt(float(np.mean(np.square(diffs)))) if diffs else None)
    return out


def nearest(evidence: dict[str, Any], data_kind: str | None, records: list[dict[str, Any]]
            ) -> list[tuple[float, dict[str, Any]]]:
    """Records of ``data_kind`` (any, when None) with their distance, nearest first (ties: record id)."""
    pool = [r for r in records if data_kind is None or r.get("data_kind") in (None, data_kind)]
    scored = [(d, r) for d, r in zip(distances(evidence, pool), pool, strict=True) if d is not None]
    return sorted(scored, key=lambda x: (x[0], str(x[1].get("id"))))


def _key(params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A comparable form of a setting (floats to 10 significant digits: JSON round trips are exact anyway)."""
    return tuple(sorted((k, float(f"{v:.10g}") if isinstance(v, float) else v) for k, v in params.items()))


def _replay(strategy: Strategy, task: TransferTask, setting: dict[str, Any]
            ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """``replay``'s parameters with their distributions (name to Optuna distribution), or None."""
    import optuna

    fixed = optuna.trial.FixedTrial(setting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an out-of-range value warns here; it is refused below
        try:
            space = strategy.search_space(fixed, task)
        except (ValueError, KeyError, TypeError):
            return None  # FixedTrial raises ValueError for a suggested name the setting lacks
    if not isinstance(space, dict):
        return None
    suggested = dict(fixed.params)
    for name, dist in fixed.distributions.items():
        value = suggested[name]
        try:
            if not dist._contains(dist.to_internal_repr(value)):
                return None
        except (ValueError, TypeError):
            return None
    return suggested, dict(fixed.distributions)


def replay(strategy: Strategy, task: TransferTask, setting: dict[str, Any]) -> dict[str, Any] | None:
    """The suggested parameters when ``strategy``'s space is asked with ``setting`` fixed, or None when the
    space suggests a name ``setting`` lacks or a value lies outside its distribution."""
    out = _replay(strategy, task, setting)
    return out[0] if out else None


def _unit(value: Any, dist: Any) -> float | None:
    """``value`` as a fraction of ``dist``'s range (log scale where the distribution is), None if categorical."""
    low, high = getattr(dist, "low", None), getattr(dist, "high", None)
    if low is None or high is None or high <= low or _numeric(value) is None:
        return None
    if getattr(dist, "log", False):
        return (math.log(float(value)) - math.log(low)) / (math.log(high) - math.log(low))
    return (float(value) - low) / (high - low)


def setting_distance(a: dict[str, Any], b: dict[str, Any], dists: dict[str, Any]) -> float:
    """Euclidean distance of two settings in the normalised space: each parameter of ``dists`` as a fraction of
    its range (log scale where searched so); a categorical value that differs, or a parameter only one setting
    has (a conditional knob), counts 1."""
    total = 0.0
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b:
            total += 1.0
            continue
        dist = dists.get(name)
        ua, ub = (_unit(a[name], dist), _unit(b[name], dist)) if dist is not None else (None, None)
        if ua is None or ub is None:
            total += 0.0 if a[name] == b[name] else 1.0
        else:
            total += (ua - ub) ** 2
    return math.sqrt(total)


def _setting(strategy: Strategy, task: TransferTask, defaults: dict[str, Any], past: dict[str, Any]
             ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A record's setting of ``strategy`` on the current space (see the module docstring) with the
    distributions of its parameters, or None."""
    held = {k: v for k, v in past.items() if k not in BOOKKEEPING_PARAMS}
    replayed = _replay(strategy, task, {**defaults, **held})
    if not replayed or not replayed[0]:
        return None
    suggested = replayed[0]
    if any(k not in suggested and k not in defaults for k in held):
        return None  # a knob the current space does not know: a record of another version
    if not any(k in held for k in suggested):
        return None  # nothing of the record would be tried
    return replayed


def plan(strategies: list[Strategy], task: TransferTask, evidence: dict[str, Any], data_kind: str | None,
         records: list[dict[str, Any]], per_study: int = MAX_PER_STUDY, max_distance: float = MAX_DISTANCE,
         near: float = NEAR) -> dict[str, list[WarmSetting]]:
    """Per strategy name, the past settings to enqueue after its default (possibly none): the nearest records
    within ``max_distance``, each setting new by more than ``near`` (see the module docstring)."""
    ranked = [(d, r) for d, r in nearest(evidence, data_kind, records) if d <= max_distance]
    out: dict[str, list[WarmSetting]] = {}
    for s in strategies:
        try:
            defaults = dict(s.default_params(task))
            base = _replay(s, task, defaults)
        except Exception:  # noqa: BLE001 - a plugin's error costs it the warm start, nothing else
            continue
        seen = [base[0]] if base and base[0] else []
        chosen: list[WarmSetting] = []
        for dist, rec in ranked:
            if len(chosen) >= per_study:
                break
            entry = rec.get("strategies", {}).get(s.name)
            if not isinstance(entry, dict) or entry.get("val_score") is None or entry.get("status") == "failed":
                continue
            params = entry.get("params")
            if not isinstance(params, dict) or not params:
                continue
            try:
                replayed = _setting(s, task, defaults, params)
            except Exception:  # noqa: BLE001 - as above
                replayed = None
            if replayed is None:
                continue
            setting, dists = replayed
            if any(_key(setting) == _key(o) or setting_distance(setting, o, dists) < near for o in seen):
                continue
            seen.append(setting)
            chosen.append(WarmSetting(str(rec.get("id")), round(dist, 4), setting))
        if chosen:
            out[s.name] = chosen
    return out


def enqueue(study: Any, settings: list[WarmSetting]) -> list[str]:
    """Enqueue ``settings`` on ``study`` (each trial marked with its record id) and record their ids on the
    study (``WARM_START_ATTR``); returns the ids."""
    ids = [w.record for w in settings]
    for w in settings:
        study.enqueue_trial(dict(w.params), user_attrs={TRIAL_ATTR: w.record}, skip_if_exists=True)
    if ids:
        study.set_user_attr(WARM_START_ATTR, ids)
    return ids


def warm_started(study: Any) -> list[str]:
    """The record ids whose settings were enqueued on ``study`` (empty for a cold start)."""
    value = study.user_attrs.get(WARM_START_ATTR)
    return [str(v) for v in value] if isinstance(value, list) else []
