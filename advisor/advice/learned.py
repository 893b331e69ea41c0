"""The quick advice learned from past outcomes: a small, explainable ranker over the advice's evidence.

One ridge-regularised linear model per strategy over the standardised evidence vector, plus one weight shared
by every strategy on the hand-set rule's score (``prior_weight``), predicts the strategy's outcome *relative to
the mean over the strategies of the same record*: the mean of its validation and test scores where the record
has both (the harness oracle's: two independent estimates of how good the tuned strategy is; on the harness this
fitted better out of sample than the test score alone, see BENCHMARKS.md), else its validation score (a user's
run), so a prediction says "this strategy lands k points above or below the average strategy here". The shared
weight lets the model keep what the hand-set rule gets right and learn only corrections to it; the fit chooses,
by leave-one-dataset-out top-pick regret, whether to use it at all. Each prediction splits into one contribution per
evidence value (and the hand-set score), which is the explanation ("feature_quality 0.94 (+1.6 sd) raised
finetune by +4.1 points").

``fit`` picks the ridge strength (and whether to lean on the hand-set score, or ship the hand-set rule itself) by
leave-one-dataset-out top-pick regret on its own records; ``evaluate_lodo`` scores a scenario with a model fitted
without every record whose source or target domain is that scenario's target domain (the Office tasks share four
domains: leaving one task out is not enough), and compares with the hand-set rule's ranking stored in the records
(``hand_set_scores``) and with the oracle's own validation-to-test agreement.

The shipped model (``model.json`` next to this file, made by ``python -m bench.fit_advice`` from the quality
harness's oracle outcomes) holds the records it was fitted on, so ``advisor advice evaluate`` works from an
installed wheel. ``advisor advice fit`` writes a user's model to ``user_model_path()``, which the advice then
prefers; ``$TRANSFER_ADVISOR_ADVICE_MODEL=none`` turns every learned model off (the hand-set rule alone). The
model stores strategy and evidence names as data; nothing here names a built-in.
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
ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)
#: A strategy is learned only from at least this many records with its outcome.
MIN_RECORDS = 3
#: An evidence value is a feature when at least this share of the records has it.
MIN_COVERAGE = 0.5
USER_MODEL_ENV = "TRANSFER_ADVISOR_ADVICE_MODEL"
#: ``$TRANSFER_ADVISOR_ADVICE_MODEL`` set to this turns the learned advice off.
NO_MODEL = "none"
#: Name of the hand-set score in a model's explanation.
HAND_SET = "hand-set score"


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
    alpha: float | None  # None: the hand-set rule, no evidence weight learned
    origin: str
    record_ids: list[str] = field(default_factory=list)
    target: str = "mean of validation and test score (those present) minus the record's mean over strategies"
    #: weight on the hand-set score relative to the ranked strategies' mean (0: the evidence alone)
    prior_weight: float = 0.0

    def standardise(self, evidence: dict[str, float]) -> np.ndarray:
        """The evidence as z-scores; a missing or non-finite value counts as the training mean (z = 0)."""
        z = np.zeros(len(self.features))
        for i, name in enumerate(self.features):
            v = evidence.get(name)
            if v is not None and math.isfinite(float(v)):
                z[i] = (float(v) - self.mean[i]) / self.scale[i]
        return z

    def predict(self, evidence: dict[str, float], hand_set: dict[str, float] | None = None) -> dict[str, float]:
        """Each learned strategy's predicted outcome relative to the average strategy (a fraction).

        ``hand_set``: the hand-set rule's scores of the strategies being ranked; with ``prior_weight`` they add
        ``prior_weight`` times each score's difference from their mean (absent: no such term)."""
        z = self.standardise(evidence)
        rel = relative_hand_set(hand_set or {}, self.strategies)
        return {name: float(m.intercept + np.dot(m.weights, z) + self.prior_weight * rel.get(name, 0.0))
                for name, m in self.strategies.items()}

    def contributions(self, evidence: dict[str, float], strategy: str,
                      hand_set: dict[str, float] | None = None) -> list[tuple[str, float, float, float]]:
        """(evidence name, its value, its z-score, how much it moved ``strategy``), largest move first; the
        hand-set score is one more row (its value, its difference from the ranked strategies' mean, its move)."""
        m = self.strategies[strategy]
        z = self.standardise(evidence)
        rows = [(name, float(evidence.get(name, self.mean[i])), float(z[i]), float(m.weights[i] * z[i]))
                for i, name in enumerate(self.features)]
        rel = relative_hand_set(hand_set or {}, self.strategies)
        if self.prior_weight and strategy in rel:
            rows.append((HAND_SET, float((hand_set or {})[strategy]), rel[strategy], self.prior_weight * rel[strategy]))
        return sorted(rows, key=lambda r: -abs(r[3]))

    def explain(self, evidence: dict[str, float], strategy: str, top: int = 2,
                hand_set: dict[str, float] | None = None) -> str:
        """One line: the prediction and the evidence that moved it most, in points of score."""
        pred = self.predict(evidence, hand_set)[strategy]
        parts = []
        for name, value, z, delta in self.contributions(evidence, strategy, hand_set)[:top]:
            if abs(delta) < 0.0005:
                continue
            verb = "raised" if delta > 0 else "lowered"
            if name == HAND_SET:
                parts.append(f"{name} {value:.2f} ({z:+.2f} against the mean) {verb} {strategy} by "
                             f"{100 * delta:+.1f} points")
                continue
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
                   list(doc.get("record_ids", [])), doc.get("target", cls.target),
                   float(doc.get("prior_weight", 0.0)))

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
    if env and env.strip().lower() != NO_MODEL:
        return Path(env).expanduser()
    from advisor.runs.metastore import default_meta_store

    return default_meta_store().parent / "advice-model.json"


def active_model() -> LearnedModel | None:
    """The model the quick advice uses: the user's fitted one if present and readable, else the shipped one;
    none when ``$TRANSFER_ADVISOR_ADVICE_MODEL`` is ``none``."""
    if os.environ.get(USER_MODEL_ENV, "").strip().lower() == NO_MODEL:
        return None
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
    their level and take their spread from the model (predicted points against the average strategy). A model
    without a weight on the hand-set score subtracts the same risk penalty; one with it already saw the penalty
    in the hand-set scores it weighs (the records hold penalised scores). Strategies the model has not learned
    keep their hand-set score (absent here).
    """
    known = [s for s in hand_set if s in model.strategies]
    if not known:
        return {}
    level = float(np.mean([hand_set[s] + penalties.get(s, 0.0) for s in known]))
    ranked = {s: hand_set[s] for s in known}
    pred = model.predict(evidence, ranked)
    penalty = (lambda s: 0.0) if model.prior_weight else (lambda s: penalties.get(s, 0.0))
    return {s: (round(level + pred[s] - penalty(s), 4), model.explain(evidence, s, hand_set=ranked)) for s in known}


def describe(model: LearnedModel) -> dict[str, Any]:
    """What the advice reports about the model it used: where it came from and the record ids."""
    return {"origin": model.origin, "records": len(model.record_ids), "record_ids": model.record_ids,
            "strategies": sorted(model.strategies), "alpha": model.alpha, "prior_weight": model.prior_weight}


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


def relative_hand_set(hand_set: dict[str, float], names: Any) -> dict[str, float]:
    """The hand-set scores of the strategies in ``names`` minus their mean (empty below two)."""
    vals = {k: float(v) for k, v in hand_set.items() if k in names and v is not None and math.isfinite(float(v))}
    if len(vals) < 2:
        return {}
    mu = float(np.mean(list(vals.values())))
    return {k: v - mu for k, v in vals.items()}


def _has_hand_set(records: list[dict[str, Any]]) -> bool:
    """Whether enough records hold the hand-set rule's scores to learn a weight on them (half or more)."""
    usable = [r for r in records if relative_outcomes(r)]
    return bool(usable) and sum(1 for r in usable if r.get("hand_set_scores")) >= 0.5 * len(usable)


def _fit_alpha(records: list[dict[str, Any]], alpha: float, origin: str, use_prior: bool = False) -> LearnedModel:
    """One least-squares fit: per strategy an unpenalised intercept and weights penalised by ``alpha`` times its
    record count, and (``use_prior``) one unpenalised weight shared by all strategies on the hand-set score."""
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
    # each record's hand-set scores against their mean over the strategies with an outcome (once per record)
    rel_hs = [relative_hand_set(r.get("hand_set_scores") or {}, d) if use_prior else {} for r, d in zip(usable, rel,
                                                                                                      strict=True)]
    names = [n for n in sorted({k for d in rel for k in d})
             if sum(1 for d in rel if n in d) >= MIN_RECORDS]
    k = len(features) + 1  # intercept and weights per strategy
    off = 1 if use_prior else 0
    rows, ys, penalty = [], [], np.zeros(off + k * len(names))
    for j, name in enumerate(names):
        idx = [i for i, d in enumerate(rel) if name in d]
        penalty[off + j * k + 1: off + (j + 1) * k] = alpha * len(idx)
        for i in idx:
            row = np.zeros(off + k * len(names))
            if use_prior:
                row[0] = rel_hs[i].get(name, 0.0)
            row[off + j * k] = 1.0
            row[off + j * k + 1: off + (j + 1) * k] = Z[i]
            rows.append(row)
            ys.append(rel[i][name])
    models: dict[str, StrategyModel] = {}
    gamma = 0.0
    if rows:
        A, y = np.asarray(rows), np.asarray(ys)
        theta = np.linalg.lstsq(A.T @ A + np.diag(penalty), A.T @ y, rcond=None)[0]
        gamma = float(theta[0]) if use_prior else 0.0
        for j, name in enumerate(names):
            block = theta[off + j * k: off + (j + 1) * k]
            models[name] = StrategyModel(round(float(block[0]), 6), [round(float(x), 6) for x in block[1:]],
                                         sum(1 for d in rel if name in d))
    return LearnedModel(features, [round(m, 6) for m in mean], [round(s, 6) for s in scale], models, alpha,
                        origin, [str(r["id"]) for r in usable], prior_weight=round(gamma, 6))


def _hand_set_only(records: list[dict[str, Any]], origin: str) -> LearnedModel:
    """The hand-set rule as a model: every strategy's intercept and weights zero, weight one on the hand-set
    score (``alpha`` None: no evidence weight was learned). ``fit`` ships it when nothing learned beats it."""
    m = _fit_alpha(records, 1.0, origin, use_prior=False)
    for sm in m.strategies.values():
        sm.intercept, sm.weights = 0.0, [0.0] * len(sm.weights)
    m.alpha, m.prior_weight = None, 1.0
    return m


def _candidate(records: list[dict[str, Any]], alpha: float | None, use_prior: bool, origin: str) -> LearnedModel:
    return _hand_set_only(records, origin) if alpha is None else _fit_alpha(records, alpha, origin, use_prior)


def _ranking(model: LearnedModel, record: dict[str, Any]) -> tuple[list[str], dict[str, float]]:
    """``model``'s ranking of the record's strategies with an outcome (best first), and those outcomes."""
    scores = {k: outcome(v) for k, v in record["strategies"].items() if outcome(v) is not None}
    pred = model.predict(record.get("evidence", {}), {s: v for s, v in (record.get("hand_set_scores") or {}).items()
                                                      if s in scores})
    return sorted((s for s in scores if s in pred), key=lambda s: (-pred[s], s)), scores


def _lodo_figures(records: list[dict[str, Any]], alpha: float | None, use_prior: bool) -> tuple[float, float]:
    """(mean top-pick regret, mean τ) of one candidate, each record ranked without its target domain's records."""
    regrets, taus = [], []
    models: dict[str, LearnedModel | None] = {}  # one fit per held-out domain: its records share the training set
    for r in records:
        held = target_domain(r)
        if held not in models:
            train = [t for t in records if held not in domains(t)]
            models[held] = _candidate(train, alpha, use_prior, "") if train else None
        m = models[held]
        if m is None:
            continue
        order, scores = _ranking(m, r)
        regret = top_regret(order, scores)[1]
        if regret is not None:
            regrets.append(regret)
            taus.append(kendall_tau(order, scores) or 0.0)
    return (float(np.mean(regrets)), float(np.mean(taus))) if regrets else (math.inf, 0.0)


def fit(records: list[dict[str, Any]], origin: str = "", alphas: tuple[float, ...] = ALPHAS) -> LearnedModel:
    """Fit the ranker on ``records``.

    Candidates: each ridge strength in ``alphas``, with and without a weight on the hand-set score (where half
    the records hold it), and the hand-set rule itself. With records of at least three target domains the
    candidate with the lowest leave-one-dataset-out top-pick regret (then the highest τ) is fitted on all of them:
    what the advice is for is its first pick, and a model that cannot beat the hand-set rule out of sample is not
    shipped in its place. Fewer domains: the middle strength, with the hand-set score where available."""
    records = [r for r in _dedupe(records) if relative_outcomes(r)]
    if not records:
        raise ValueError("no record has outcomes for two or more strategies: nothing to learn from")
    origin = origin or f"fitted on {len(records)} records"
    hand_set = _has_hand_set(records)
    priors = (False, True) if hand_set else (False,)
    candidates: list[tuple[float | None, bool]] = [(a, p) for p in priors for a in alphas]
    if hand_set:
        candidates.append((None, True))
    if len({target_domain(r) for r in records}) >= 3 and len(candidates) > 1:
        def key(c: tuple[float | None, bool]) -> tuple[float, float]:
            regret, tau = _lodo_figures(records, *c)
            return round(regret, 9), -round(tau, 9)

        alpha, use_prior = min(candidates, key=key)
    else:
        alpha, use_prior = alphas[len(alphas) // 2], priors[-1]
    return _candidate(records, alpha, use_prior, origin)


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

    The held-out scenario's model is chosen by ``fit`` on the remaining records, its own leave-one-dataset-out
    included: the figures are nested, so the choice of candidate is out of sample too.

    Outcomes are the records' test scores (the oracle's, for harness records); the hand-set prior is the
    ranking by the record's ``hand_set_scores`` (``hand_set_ranking``), restricted to the strategies with an
    outcome; the oracle's own figure ranks the strategies by their validation score (``oracle_val_tau``: the
    validation-to-test agreement, a ceiling for anything that sees no test data), available only where records
    have both scores; where records of one task on several target splits exist, ``oracle_split_tau`` is the
    split-to-split agreement (``split_to_split``).
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
            order = _ranking(m, r)[0]
            tau = kendall_tau(order, scores)
            top, regret = top_regret(order, scores)
        prior = [s for s in hand_set_ranking(r) if s in scores]
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


def hand_set_ranking(record: dict[str, Any]) -> list[str]:
    """The hand-set rule's ranking of a record (best first): by its ``hand_set_scores`` where stored, else its
    ``prior_ranking`` (older records, whose ranking may already have come from a learned model)."""
    hs = record.get("hand_set_scores") or {}
    if hs:
        return sorted(hs, key=lambda s: (-hs[s], s))
    return list(record.get("prior_ranking", []))


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
