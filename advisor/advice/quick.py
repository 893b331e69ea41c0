"""Quick advice: signals + target size + applicability -> a prior ranking and risks.

Cheap, deterministic and explainable: no training. The advice reads metrics by the kind of
evidence they declare (``advisor.plugin.EVIDENCE_KINDS``) and strategies by their ``role`` and
``family``; it names no plugin. The prior score of a strategy is a weighted sum of four pieces of
evidence, each in [0, 1]:

- ``feature_quality``: how well the source model's frozen features separate the target
  classes, ``(accuracy - chance) / (1 - chance)`` from the ``feature_quality`` evidence;
- ``raw_quality``: the same from a leave-one-out k-NN on the raw target inputs (standardised):
  how far the target alone gets without any source knowledge. Transfer pays where the first
  clearly beats the second;
- ``similarity``: ``1 - distance / 2`` from the ``domain_distance`` evidence (in [0, 2]);
- ``scarcity``: ``1 / (1 + n_per_class / 20)``: the fewer target labels, the more any
  transfer matters.

with weights per role or family (``WEIGHTS``, ``weights_key``), minus a penalty per risk level
(medium 0.15, high 0.4). Missing evidence counts as 0.5 (no evidence either way). The weights were
set by hand from the first quality-harness runs (``bench/quality.py``; figures in BENCHMARKS.md): a
probe is only as good as the frozen features, so it loses where the raw inputs separate the classes
as well; the fine-tuning families start from the source but can still learn what the raw inputs
offer; strategies that pool source labels (instance, feature) help where the target alone is weak
and hurt where its own labels already separate the classes (the source then pulls the boundary
toward another domain's), hence their negative raw-quality weight; a reference rests on the raw
inputs, and the feature quality stands in for how separable the target is at all (raw k-NN
under-rates what a trained network gets from sparse tables). Conflicting label semantics (one rule,
``advisor.plugin.label_conflict``) are a high risk for every strategy that trains on source labels.
The ranking is a prior: the search corrects it, and BENCHMARKS.md measures it (Kendall's τ against
the oracle).

Learned prior: where a learned model (``advisor.advice.learned``: the user's ``advisor advice fit`` model,
else the shipped one fitted on the harness's oracle outcomes; ``$TRANSFER_ADVISOR_ADVICE_MODEL=none`` turns it
off) has learned a strategy, its prior score comes from that model (``learned.blend``: a learned weight on the
hand-set score plus the evidence's learned corrections) and its reasons say which evidence moved it; the rest
keep the hand-set score. Every row keeps its hand-set score (``hand_set_score``). ``quick_advice(...,
model=None)`` is the hand-set rule alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from advisor.plugin.contracts import MetricResult, Risk, Strategy, TransferTask
from advisor.plugin.evidence import evidence as find_evidence
from advisor.plugin.evidence import label_conflict, label_predictability

LEVELS = ("low", "medium", "high")
PENALTY = {"low": 0.0, "medium": 0.15, "high": 0.4}
#: (feature_quality, similarity, scarcity, constant, raw_quality) weights: by role for the reference
#: (trains on the target alone) and the probe (reads frozen source features), by family for the rest
#: ("baseline": plain fine-tuning, also the fallback for an unknown family).
WEIGHTS = {
    "reference": (0.3, 0.0, 0.0, 0.1, 0.5),
    "probe": (0.9, 0.0, 0.0, 0.0, -0.3),
    "baseline": (0.5, 0.1, 0.1, 0.1, 0.2),
    "model": (0.5, 0.15, 0.1, 0.1, 0.2),
    "progressive": (0.5, 0.1, 0.1, 0.12, 0.2),
    "instance": (0.4, 0.3, 0.1, 0.1, -0.3),
    "feature": (0.4, 0.3, 0.1, 0.08, -0.3),
}
FALLBACK_WEIGHTS = "baseline"


@dataclass
class AdviceRow:
    """One strategy's place in the quick advice."""

    strategy: str
    family: str
    prior_score: float
    risk: str
    reasons: list[str] = field(default_factory=list)
    #: the hand-set rule's score (risk penalty included), kept when a learned model sets ``prior_score``: the
    #: meta-store records it, so a model can be fitted and scored against the hand-set rule itself
    hand_set_score: float | None = None


@dataclass
class Advice:
    """The prior ranking (best first), the evidence used, and non-applicable strategies."""

    ranking: list[AdviceRow]
    evidence: dict[str, float]
    not_applicable: dict[str, str] = field(default_factory=dict)
    learned: dict[str, Any] | None = None  # the learned model used: origin and record ids

    def to_json(self) -> dict[str, Any]:
        doc = {"ranking": [asdict(r) for r in self.ranking], "evidence": self.evidence}
        return {**doc, "learned": self.learned} if self.learned else doc


def evidence(signals: dict[str, MetricResult], task: TransferTask) -> dict[str, float]:
    """The numbers the advice rests on (each in [0, 1] where defined), read by evidence kind."""
    c = max(task.num_classes, 2)
    chance = 1.0 / c
    ev: dict[str, float] = {}
    quality = find_evidence(signals, "feature_quality")
    ev["feature_quality"] = (0.5 if quality is None
                             else min(1.0, max(0.0, (quality.value - chance) / (1 - chance))))
    from advisor.metrics.neighbours import raw_knn_accuracy

    labelled = task.target_train if task.target_val is None else task.target_train.concat(task.target_val)
    raw = raw_knn_accuracy(labelled, seed=task.seed)
    ev["raw_quality"] = 0.5 if raw is None else min(1.0, max(0.0, (raw - chance) / (1 - chance)))
    distance = find_evidence(signals, "domain_distance")
    ev["similarity"] = 0.5 if distance is None else min(1.0, max(0.0, 1 - distance.value / 2))
    n_pc = len(task.target_train) / c
    ev["labels_per_class"] = n_pc
    ev["scarcity"] = 1.0 / (1.0 + n_pc / 20.0)
    predictability = label_predictability(signals, c)
    if predictability is not None:
        ev["label_predictability"] = predictability.value
    accuracy = find_evidence(signals, "source_head_accuracy")
    if accuracy is not None:
        ev["source_head_accuracy"] = accuracy.value
    return ev


def general_risks(strategy: Strategy, ev: dict[str, float], signals: dict[str, MetricResult],
                  task: TransferTask) -> list[Risk]:
    """Risks the core sees for any strategy, from the evidence (strategy plugins add theirs)."""
    risks: list[Risk] = []
    if strategy.role == "reference":
        if ev["labels_per_class"] < 5 and ev["raw_quality"] < 0.2:
            risks.append(Risk("medium", f"only {ev['labels_per_class']:.1f} labelled target samples per "
                                        f"class to train from scratch, and the raw inputs separate the classes "
                                        f"poorly (k-NN quality {ev['raw_quality']:.2f})"))
        return risks
    uses_source_labels = bool(getattr(strategy.needs, "source_data", False))
    conflict = label_conflict(signals, task.num_classes) if uses_source_labels else None
    if conflict is not None:
        risks.append(Risk("high", conflict.reason()))
    if ev["feature_quality"] < 0.2:
        risks.append(Risk("medium", f"frozen source features barely separate the target classes "
                                    f"(feature quality {ev['feature_quality']:.2f})"))
    return risks


def worst(levels: list[str]) -> str:
    return max(levels, key=LEVELS.index) if levels else "low"


def weights_key(strategy: Strategy) -> str:
    """Which ``WEIGHTS`` row a strategy gets: its role when reference or probe, else its family."""
    return strategy.role if strategy.role in ("reference", "probe") else strategy.family


def prior_score(strategy: Strategy, ev: dict[str, float], risk: str) -> float:
    """The weighted evidence for ``strategy`` minus the penalty of its worst ``risk`` level."""
    wq, ws, wn, w0, wr = WEIGHTS.get(weights_key(strategy), WEIGHTS[FALLBACK_WEIGHTS])
    raw = (wq * ev["feature_quality"] + ws * ev["similarity"] + wn * ev["scarcity"] + w0
           + wr * ev.get("raw_quality", 0.5))
    return round(raw - PENALTY[risk], 4)


def quick_advice(
    strategies: list[Strategy],
    signals: dict[str, MetricResult],
    task: TransferTask,
    model: Any = "active",
) -> Advice:
    """Rank applicable strategies before any training; list the others with their reason.

    ``model``: the learned model for the strategies it knows ("active": ``learned.active_model()``; None: the
    hand-set rule alone)."""
    from advisor.advice.learned import active_model, blend, describe

    ev = evidence(signals, task)
    rows: list[AdviceRow] = []
    not_applicable: dict[str, str] = {}
    for s in strategies:
        reason = task.unmet(s.needs)
        if reason:
            not_applicable[s.name] = reason
            continue
        risks = general_risks(s, ev, signals, task)
        try:
            risks += list(s.risks(signals, task))
        except Exception as exc:  # a plugin's risk code must not stop the advice
            risks.append(Risk("medium", f"risk assessment failed: {type(exc).__name__}: {exc}"))
        reasons = list(dict.fromkeys(r.reason for r in risks))
        level = worst([r.level for r in risks])
        score = prior_score(s, ev, level)
        rows.append(AdviceRow(s.name, s.family, score, level, reasons, hand_set_score=score))
    learned = active_model() if model == "active" else model
    blended = {} if learned is None else blend(learned, ev, {r.strategy: r.prior_score for r in rows},
                                               {r.strategy: PENALTY[r.risk] for r in rows})
    for r in rows:
        if r.strategy in blended:
            r.prior_score = blended[r.strategy][0]
            r.reasons.append(blended[r.strategy][1])
    rows.sort(key=lambda r: (-r.prior_score, r.strategy))
    return Advice(rows, {k: round(v, 4) for k, v in ev.items()}, not_applicable,
                  describe(learned) if blended else None)
