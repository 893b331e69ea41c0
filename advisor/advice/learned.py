"""The quick advice learned from past outcomes: a small, explainable ranker over the advice's evidence.

One ridge-regularised linear model per strategy over the standardised evidence vector predicts the strategy's
outcome *relative to the mean over the strategies of the same record*: the mean of its validation and test
scores where the record has both (the harness oracle's: two independent estimates of how good the tuned strategy
is; on the harness this fitted better out of sample than the test score alone, see BENCHMARKS.md), else its
validation score (a user's run), so a prediction says "this strategy lands k points above or below the average
strategy here". Each prediction splits into one contribution per evidence value, which is the explanation
("feature_quality 0.94 (+1.6 sd) raised finetune by +4.1 points").

``fit`` picks the ridge strength by leave-one-dataset-out cross-validation on its own records; ``evaluate_lodo``
scores a scenario with a model fitted without every record whose source or target domain is that scenario's
target domain (the Office tasks share four domains: leaving one task out is not enough), and compares with the
hand-set prior's ranking stored in the records and with the oracle's own validation-to-test agreement.

The shipped model (``model.json`` next to this file, made by ``python -m bench.fit_advice`` from the quality
harness's oracle outcomes) holds the records it was fitted on, so ``advisor advice evaluate`` works from an
installed wheel. ``advisor advice fit`` writes a user's model to ``user_model_path()``, which the advice then
prefers. The model stores strategy and evidence names as data; nothing here names a built-in.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MODEL_SCHEMA = 1
SHIPPED_MODEL = Path(__file__).with_name("model.json")
#: Ridge strengths tried (per record: the penalty is alpha * n on standardised evidence).
ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
#: A strategy is learned only from at least this many records with its outcome.
MIN_RECORDS = 3
#: An evidence value is a feature when at least this share of the records has it.
MIN_COVERAGE = 0.5
USER_MODEL_ENV = "TRANSFER_ADVISOR_ADVICE_MODEL"


@dataclass
class StrategyModel:
    """One strategy's linear model: relative outcome = intercept + weights . standardised evidence."""

    intercept: float
    weights: list[float]
    records: int


@dataclass
class LearnedModel:
    """Per-strategy ridge models over a shared, standardised evidence vector."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    strategies: dict[str, StrategyModel]
    alpha: float
    origin: str
    record_ids: list[str] = field(default_factory=list)
    target: str = "mean of validation and test score (those present) minus the record's mean over strategies"

    def standardise(self, evidence: dict[str, float]) -> np.ndarray:
        """The evidence as z-scores; a missing or non-finite value counts as the training mean (z = 0)."""
        z = np.zeros(len(self.features))
        for i, name in enumerate(self.features):
            v = evidence.get(name)
            if v is not None and math.isfinite(float(v)):
                z[i] = (float(v) - self.mean[i]) / self.scale[i]
        return z

    def predict(self, evidence: dict[str, float]) -> dict[str, float]:
        """Each learned strategy's predicted outcome relative to the average strategy (a fraction)."""
        z = self.standardise(evidence)
        return {name: float(m.intercept + np.dot(m.weights, z)) for name, m in self.strategies.items()}

    def contributions(self, evidence: dict[str, float], strategy: str) -> list[tuple[str, float, float, float]]:
        """(evidence name, its value, its z-score, how much it moved ``strategy``), largest move first."""
        m = self.strategies[strategy]
        z = self.standardise(evidence)
        rows = [(name, float(evidence.get(name, self.mean[i])), float(z[i]), float(m.weights[i] * z[i]))
                for i, name in enumerate(self.features)]
        return sorted(rows, key=lambda r: -abs(r[3]))

    def explain(self, evidence: dict[str, float], strategy: str, top: int = 2) -> str:
        """One line: the prediction and the evidence that moved it most, in points of score."""
        pred = self.predict(evidence)[strategy]
        parts = []
        for name, value, z, delta in self.contributions(evidence, strategy)[:top]:
            if abs(delta) < 0.0005:
                continue
            verb = "raised" if delta > 0 else "lowered"
            parts.append(f"{name} {value:.2f} ({z:+.1f} sd) {verb} {strategy} by {100 * delta:+.1f} points")
        why = "; ".join(parts) if parts else "no evidence moved it from its average"
        ids = self.record_ids
        shown = "" if self.origin.startswith("shipped") else (
            "; records " + ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else ""))
        return (f"learned prior: {100 * pred:+.1f} points against the average strategy ({why}; "
                f"{self.origin}{shown})")

    def to_json(self) -> dict[str, Any]:
        return {"schema": MODEL_SCHEMA, **asdict(self)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LearnedModel:
        if doc.get("schema") != MODEL_SCHEMA:
            raise ValueError(f"advice model schema {doc.get('schema')!r}, expected {MODEL_SCHEMA}")
        strategies = {k: StrategyModel(**v) for k, v in doc["strategies"].items()}
        return cls(doc["features"], doc["mean"], doc["scale"], strategies, doc["alpha"], doc["origin"],
                   list(doc.get("record_ids", [])), doc.get("target", cls.target))

    def save(self, path: str | Path, records: list[dict[str, Any]] | None = None) -> Path:
        """Write the model (and, for evaluation elsewhere, the records it was fitted on) as JSON."""
        doc = {"model": self.to_json(), "records": records or []}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        return path


def load_file(path: str | Path) -> tuple[LearnedModel, list[dict[str, Any]]]:
    """A model file's model and the records stored with it."""
    doc = json.loads(Path(path).read_text())
    return LearnedModel.from_json(doc["model"]), list(doc.get("records", []))


def user_model_path() -> Path:
    """Where ``advisor advice fit`` writes by default: ``$TRANSFER_ADVISOR_ADVICE_MODEL``, else
    ``advice-model.json`` in the cache root (``$TRANSFER_ADVISOR_CACHE``, ``$XDG_CACHE_HOME/transfer-advisor``
    or ``~/.cache/transfer-advisor``)."""
    env = os.environ.get(USER_MODEL_ENV)
    if env:
        return Path(env).expanduser()
    from advisor.runs.metastore import default_meta_store

    return default_meta_store().parent / "advice-model.json"


def active_model() -> LearnedModel | None:
    """The model the quick advice uses: the user's fitted one if present and readable, else the shipped one."""
    for path in (user_model_path(), SHIPPED_MODEL):
        if path.exists():
            try:
                return load_file(path)[0]
            except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
                continue
    return None


def blend(model: LearnedModel, evidence: dict[str, float], hand_set: dict[str, float],
          penalties: dict[str, float]) -> dict[str, tuple[float, str]]:
    """Prior scores of the strategies ``model`` has learned, on the hand-set scale, with their reason.

    ``hand_set`` holds every applicable strategy's hand-set score and ``penalties`` its risk penalty (already
    subtracted in ``hand_set``). The learned strategies keep the hand-set mean of their unpenalised scores as
    their level and take their spread from the model (predicted points against the average strategy), minus
    the same risk penalty; strategies the model has not learned keep their hand-set score (absent here).
    """
    known = [s for s in hand_set if s in model.strategies]
    if not known:
        return {}
    level = float(np.mean([hand_set[s] + penalties.get(s, 0.0) for s in known]))
    pred = model.predict(evidence)
    return {s: (round(level + pred[s] - penalties.get(s, 0.0), 4), model.explain(evidence, s)) for s in known}


def describe(model: LearnedModel) -> dict[str, Any]:
    """What the advice reports about the model it used: where it came from and the record ids."""
    return {"origin": model.origin, "records": len(model.record_ids), "record_ids": model.record_ids,
            "strategies": sorted(model.strategies), "alpha": model.alpha}


# --------------------------------------------------------------------------- fitting


def _score(entry: dict[str, Any], key: str) -> float | None:
    v = entry.get(key)
    return float(v) if v is not None and math.isfinite(float(v)) else None


def outcome(entry: dict[str, Any]) -> float | None:
    """What a ranking is scored against: the strategy's test score where measured, else its validation score."""
    t = _score(entry, "test_score")
    return t if t is not None else _score(entry, "val_score")


def fit_outcome(entry: dict[str, Any]) -> float | None:
    """What the ranker learns: the mean of the validation and test scores present."""
    vals = [v for v in (_score(entry, "val_score"), _score(entry, "test_score")) if v is not None]
    return float(np.mean(vals)) if vals else None


def relative_outcomes(record: dict[str, Any]) -> dict[str, float]:
    """Each strategy's fit outcome minus the record's mean over its strategies (empty below two strategies)."""
    raw = {k: fit_outcome(v) for k, v in record.get("strategies", {}).items()}
    vals = {k: v for k, v in raw.items() if v is not None}
    if len(vals) < 2:
        return {}
    mu = float(np.mean(list(vals.values())))
    return {k: v - mu for k, v in vals.items()}


def _numeric(ev: dict[str, Any], name: str) -> float | None:
    v = ev.get(name)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(float(v)):
        return None
    return float(v)


def domains(record: dict[str, Any]) -> set[str]:
    """The names of the record's source and target domains."""
    d = record.get("domains", {})
    return {str(d[k]["name"]) for k in ("source", "target") if d.get(k, {}).get("name")}


def target_domain(record: dict[str, Any]) -> str:
    return str(record.get("domains", {}).get("target", {}).get("name", record.get("id")))


def _design(records: list[dict[str, Any]], features: list[str]) -> np.ndarray:
    X = np.full((len(records), len(features)), np.nan)
    for i, r in enumerate(records):
        for j, f in enumerate(features):
            v = _numeric(r.get("evidence", {}), f)
            if v is not None:
                X[i, j] = v
    return X


def _ridge(Z: np.ndarray, y: np.ndarray, alpha: float) -> tuple[float, np.ndarray]:
    """Intercept (unpenalised) and weights of ridge regression with penalty ``alpha * n``."""
    zm, ym = Z.mean(0), float(y.mean())
    Zc = Z - zm
    w = np.linalg.solve(Zc.T @ Zc + alpha * len(y) * np.eye(Z.shape[1]), Zc.T @ (y - ym))
    return ym - float(zm @ w), w


def _fit_alpha(records: list[dict[str, Any]], alpha: float, origin: str) -> LearnedModel:
    usable = [r for r in records if relative_outcomes(r)]
    counts: dict[str, int] = {}
    for r in usable:
        for name in r.get("evidence", {}):
            if _numeric(r["evidence"], name) is not None:
                counts[name] = counts.get(name, 0) + 1
    features = sorted(n for n, c in counts.items() if c >= MIN_COVERAGE * max(1, len(usable)))
    X = _design(usable, features)
    mean = [float(np.nanmean(X[:, j])) if len(usable) else 0.0 for j in range(len(features))]
    scale = []
    for j in range(len(features)):
        sd = float(np.nanstd(X[:, j])) if len(usable) else 0.0
        scale.append(sd if sd > 1e-9 else 1.0)
    Z = np.nan_to_num((X - np.asarray(mean)) / np.asarray(scale)) if len(usable) else X
    rel = [relative_outcomes(r) for r in usable]
    models: dict[str, StrategyModel] = {}
    for name in sorted({k for d in rel for k in d}):
        idx = [i for i, d in enumerate(rel) if name in d]
        if len(idx) < MIN_RECORDS:
            continue
        b, w = _ridge(Z[idx], np.asarray([rel[i][name] for i in idx]), alpha)
        models[name] = StrategyModel(round(b, 6), [round(float(x), 6) for x in w], len(idx))
    return LearnedModel(features, [round(m, 6) for m in mean], [round(s, 6) for s in scale], models, alpha,
                        origin, [str(r["id"]) for r in usable])


def _cv_error(records: list[dict[str, Any]], alpha: float) -> float:
    """Mean squared error of relative outcomes, each record predicted without its target domain's records."""
    errs = []
    models: dict[str, LearnedModel | None] = {}  # one fit per held-out domain: its records share the training set
    for r in records:
        held = target_domain(r)
        if held not in models:
            train = [t for t in records if held not in domains(t)]
            models[held] = _fit_alpha(train, alpha, "") if train else None
        m = models[held]
        if m is None:
            continue
        pred = m.predict(r.get("evidence", {}))
        errs += [(pred[k] - v) ** 2 for k, v in relative_outcomes(r).items() if k in pred]
    return float(np.mean(errs)) if errs else math.inf


def fit(records: list[dict[str, Any]], origin: str = "", alphas: tuple[float, ...] = ALPHAS) -> LearnedModel:
    """Fit the ranker on ``records``; the ridge strength is chosen by leave-one-dataset-out error when the
    records span at least three target domains (else the middle of ``alphas``)."""
    records = [r for r in _dedupe(records) if relative_outcomes(r)]
    if not records:
        raise ValueError("no record has outcomes for two or more strategies: nothing to learn from")
    origin = origin or f"fitted on {len(records)} records"
    if len({target_domain(r) for r in records}) >= 3 and len(alphas) > 1:
        alpha = min(alphas, key=lambda a: _cv_error(records, a))
    else:
        alpha = alphas[len(alphas) // 2]
    return _fit_alpha(records, alpha, origin)


# --------------------------------------------------------------------------- evaluation


def kendall_tau(order: list[str], scores: dict[str, float]) -> float | None:
    """Kendall's τ-b between a ranking (best first) and outcomes, over the strategies both have."""
    from scipy.stats import kendalltau

    common = [s for s in order if s in scores]
    if len(common) < 2:
        return None
    tau = kendalltau([-i for i in range(len(common))], [scores[s] for s in common]).statistic
    return None if tau is None or not math.isfinite(tau) else round(float(tau), 3)


def top_regret(order: list[str], scores: dict[str, float]) -> tuple[str | None, float | None]:
    """The ranking's first strategy with an outcome and its regret in points against the best outcome."""
    top = next((s for s in order if s in scores), None)
    if top is None:
        return None, None
    return top, round(100 * (max(scores.values()) - scores[top]), 2)


@dataclass
class ScenarioFigures:
    """One held-out scenario: the learned ranking, the hand-set prior's and the oracle's own, scored."""

    record: str
    held_out_domain: str
    records_used: int
    tau: float | None
    top: str | None
    top_regret: float | None
    prior_tau: float | None
    prior_top: str | None
    prior_top_regret: float | None
    oracle_val_tau: float | None
    oracle_val_top_regret: float | None


@dataclass
class Evaluation:
    """Leave-one-dataset-out figures per scenario and their means."""

    scenarios: list[ScenarioFigures]
    summary: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"summary": self.summary, "scenarios": [asdict(s) for s in self.scenarios]}


def _mean(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return round(float(np.mean(vals)), 3) if vals else None


def evaluate_lodo(records: list[dict[str, Any]], alphas: tuple[float, ...] = ALPHAS) -> Evaluation:
    """Score each record's ranking with a model fitted without every record sharing its target domain.

    Outcomes are the records' test scores (the oracle's, for harness records); the hand-set prior is the
    ``prior_ranking`` stored in the record, restricted to the strategies with an outcome; the oracle's own
    figure ranks the strategies by their validation score (``oracle_val_tau``: the validation-to-test agreement, a
    ceiling for anything that sees no test data), available only where records have both scores; where records of
    one task on several target splits exist, ``oracle_split_tau`` is the split-to-split agreement
    (``split_to_split``).
    """
    records = [r for r in _dedupe(records) if relative_outcomes(r)]
    rows = []
    # one fit per held-out domain: its records share the training set (model, records it was fitted on)
    models: dict[str, tuple[LearnedModel | None, int]] = {}
    for r in records:
        held = target_domain(r)
        if held not in models:
            train = [t for t in records if held not in domains(t)]
            models[held] = (fit(train, alphas=alphas) if train else None, len(train))
        m, n_train = models[held]
        scores = {k: outcome(v) for k, v in r["strategies"].items() if outcome(v) is not None}
        tau = top = regret = None
        if m is not None:
            pred = m.predict(r.get("evidence", {}))
            order = sorted((s for s in scores if s in pred), key=lambda s: (-pred[s], s))
            tau = kendall_tau(order, scores)
            top, regret = top_regret(order, scores)
        prior = [s for s in r.get("prior_ranking", []) if s in scores]
        p_top, p_regret = top_regret(prior, scores)
        vals = {k: v["val_score"] for k, v in r["strategies"].items()
                if v.get("val_score") is not None and v.get("test_score") is not None}
        o_tau = o_regret = None
        if len(vals) >= 2 and len(vals) == len(scores):
            by_val = sorted(vals, key=lambda s: (-vals[s], s))
            o_tau = kendall_tau(by_val, scores)
            o_regret = top_regret(by_val, scores)[1]
        rows.append(ScenarioFigures(str(r["id"]), held, n_train, tau, top, regret, kendall_tau(prior, scores),
                                    p_top, p_regret, o_tau, o_regret))
    split_tau, split_regret, pairs = split_to_split(records)
    summary = {
        "records": len(records),
        "scored": sum(1 for x in rows if x.tau is not None),
        "advice_tau_lodo": _mean([x.tau for x in rows]),
        "advice_top_regret_lodo_points": _mean([x.top_regret for x in rows]),
        "prior_tau": _mean([x.prior_tau for x in rows]),
        "prior_top_regret_points": _mean([x.prior_top_regret for x in rows]),
        "oracle_val_tau": _mean([x.oracle_val_tau for x in rows]),
        "oracle_val_top_regret_points": _mean([x.oracle_val_top_regret for x in rows]),
        "oracle_split_tau": split_tau, "oracle_split_top_regret_points": split_regret, "oracle_split_pairs": pairs,
        "targets": {"advice_tau_lodo": ">= 0.5", "advice_top_regret_lodo_points": "<= 1.5"},
    }
    return Evaluation(rows, summary)


def split_to_split(records: list[dict[str, Any]]) -> tuple[float | None, float | None, int]:
    """The oracle's own split-to-split agreement: (mean τ, mean top regret in points, pairs).

    Records of the same run (``run``: the harness scenario) on different target splits are paired both ways;
    one split's outcome ranking (its best first) is scored against the other's outcomes, as the learned
    ranking is. Nothing that sees no outcome of the scored split can be expected to do better: the ceiling.
    """
    by_run: dict[str, list[dict[str, float]]] = {}
    for r in records:
        scores = {k: outcome(v) for k, v in r.get("strategies", {}).items() if outcome(v) is not None}
        if r.get("run") and len(scores) >= 2:
            by_run.setdefault(str(r["run"]), []).append(scores)
    taus, regrets = [], []
    for group in by_run.values():
        for i, a in enumerate(group):
            for j, b in enumerate(group):
                if i == j:
                    continue
                order = sorted(a, key=lambda s: (-a[s], s))
                taus.append(kendall_tau(order, b))
                regrets.append(top_regret(order, b)[1])
    return _mean(taus), _mean(regrets), len(taus)


def format_evaluation(ev: Evaluation) -> str:
    """A plain-text table of the evaluation (one line per scenario, then the means)."""

    def f(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    lines = [f"{'record':34} {'held out':16} {'n':>3} {'tau':>6} {'regret':>7} {'prior tau':>9} "
             f"{'regret':>7} {'oracle tau':>10}"]
    for s in ev.scenarios:
        lines.append(f"{s.record[:34]:34} {s.held_out_domain[:16]:16} {s.records_used:3d} {f(s.tau):>6} "
                     f"{f(s.top_regret):>7} {f(s.prior_tau):>9} {f(s.prior_top_regret):>7} "
                     f"{f(s.oracle_val_tau):>10}")
    m = ev.summary
    oracle = (f"oracle validation->test tau {f(m['oracle_val_tau'])}, top regret "
              f"{f(m['oracle_val_top_regret_points'])} points (the ceiling)" if m["oracle_val_tau"] is not None
              else "oracle validation->test tau: not available (the records lack test or validation scores)")
    lines += ["",
              f"learned, leave-one-dataset-out over {m['scored']} of {m['records']} records: tau "
              f"{f(m['advice_tau_lodo'])} (target >= 0.5), top-pick regret {f(m['advice_top_regret_lodo_points'])}"
              " points (target <= 1.5)",
              f"hand-set prior on the same records: tau {f(m['prior_tau'])}, top-pick regret "
              f"{f(m['prior_top_regret_points'])} points",
              oracle]
    if m.get("oracle_split_pairs"):
        lines.append(f"oracle split-to-split (one target split's oracle ranking scored on another split of the same "
                     f"task, {m['oracle_split_pairs']} pairs): tau {f(m['oracle_split_tau'])}, top regret "
                     f"{f(m['oracle_split_top_regret_points'])} points")
    return "\n".join(lines)


def _dedupe(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per run fingerprint: the meta-store's own rule."""
    from advisor.runs.metastore import dedupe

    return dedupe(records)
