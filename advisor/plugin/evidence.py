"""Reading signals: a metric's value by name, evidence by kind, and the one conflicting-labels rule.

Plugins read their own metrics by name (``signal_value``); the core reads only evidence kinds
(``evidence``, see ``EVIDENCE_KINDS`` in ``advisor.plugin.contracts``), so a third-party metric can
stand in for a built-in one. ``label_conflict`` is the single rule for conflicting label semantics
(same class names, other meaning): the quick advice applies it to every strategy that trains on
source labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from advisor.plugin.contracts import MetricResult

#: Conflicting label semantics: the source head's prediction determines the target label at least
#: this well (``label_predictability``, normalised to [0, 1]) ...
CONFLICT_PREDICTABILITY = 0.5
#: ... while its accuracy on the target is below this fraction of that predictability.
CONFLICT_ACCURACY_RATIO = 0.6


@dataclass(frozen=True)
class Evidence:
    """One piece of evidence: its value and the metric that provided it."""

    value: float
    metric: str


def signal_value(signals: Mapping[str, MetricResult], name: str) -> float | None:
    """The value of the signal called ``name``, or ``None`` when it is missing or not finite."""
    res = signals.get(name)
    if res is None or res.value is None or not math.isfinite(float(res.value)):
        return None
    return float(res.value)


def evidence(signals: Mapping[str, MetricResult], kind: str) -> Evidence | None:
    """The first finite signal (in registry order) whose metric declares evidence ``kind``."""
    for name, res in signals.items():
        if res.evidence == kind and (value := signal_value(signals, name)) is not None:
            return Evidence(value, name)
    return None


def label_predictability(signals: Mapping[str, MetricResult], num_classes: int) -> Evidence | None:
    """``label_predictability`` evidence normalised to [0, 1]: ``1 + value / log(classes)``, clipped."""
    found = evidence(signals, "label_predictability")
    if found is None:
        return None
    c = max(int(num_classes), 2)
    return Evidence(min(1.0, max(0.0, 1.0 + found.value / math.log(c))), found.metric)


@dataclass(frozen=True)
class LabelConflict:
    """Evidence that the source's class names mean other things on the target."""

    predictability: Evidence  # normalised to [0, 1]
    accuracy: Evidence  # the source head's accuracy on the target

    def reason(self) -> str:
        """The risk sentence, citing both pieces of evidence."""
        return (f"conflicting label semantics: the source model's predictions determine the target label "
                f"well (label predictability {self.predictability.value:.2f} from "
                f"{self.predictability.metric.upper()}) but are mostly wrong ({self.accuracy.metric} "
                f"{self.accuracy.value:.2f}); training on source labels teaches the wrong mapping")


def is_label_conflict(predictability: float, accuracy: float) -> bool:
    """The rule: predictions informative (>= 0.5 normalised) yet accuracy below 0.6 x predictability."""
    return predictability >= CONFLICT_PREDICTABILITY and accuracy < CONFLICT_ACCURACY_RATIO * predictability


def label_conflict(signals: Mapping[str, MetricResult], num_classes: int) -> LabelConflict | None:
    """The conflict, when the signals show one (``None`` when they do not or cannot tell)."""
    pred = label_predictability(signals, num_classes)
    acc = evidence(signals, "source_head_accuracy")
    if pred is None or acc is None or not is_label_conflict(pred.value, acc.value):
        return None
    return LabelConflict(pred, acc)
