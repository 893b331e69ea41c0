"""Signals: every applicable metric computed on one set of inputs, with the reasons for the rest.

``metric_inputs`` turns domains (and the source backbone) into the features metrics read: the
target is its train and validation splits joined, never the test split. ``compute_signals``
runs the registered metrics; a metric whose needs are unmet is listed with its reason, and a
metric that raises is recorded as an error while the others carry on. Each result carries the
evidence kind its metric declares (``MetricResult.evidence``): that is how the advice reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from advisor.data.domain import Domain
from advisor.plugin.contracts import EVIDENCE_KINDS, MetricInputs, MetricResult, Needs

if TYPE_CHECKING:
    from advisor.features.cache import FeatureCache
    from advisor.models.backbone import Backbone
    from advisor.plugin.registry import Registry


@dataclass
class Signals:
    """Metric results by name, plus the metrics that could not run and why."""

    results: dict[str, MetricResult] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """``{"metrics": {name: {value, p_value, direction, interpretation, ...}}, "not_applicable",
        "errors"}``."""
        return {
            "metrics": {name: r.to_json() for name, r in self.results.items()},
            "not_applicable": dict(self.not_applicable),
            "errors": dict(self.errors),
        }


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _table(domain: Domain) -> np.ndarray:
    """A domain's inputs as an N x D float array, as stored (images flattened; uint8 images in [0, 1])."""
    from advisor.data.domain import as_float

    return as_float(domain.X).reshape(len(domain), -1)


def metric_inputs(
    source: Domain | None,
    target_train: Domain,
    target_val: Domain | None,
    target_unlabeled: Domain | None = None,
    backbone: Backbone | None = None,
    cache: FeatureCache | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> MetricInputs:
    """Features (and source-head probabilities) for the metrics; the target is train+val only.

    With ``backbone=None`` the features are the stored inputs as they are (no scaling or
    projection) and there are no source predictions. With a backbone, penultimate features and
    head logits come from the frozen-prefix ``cache`` (a fresh in-memory one when ``None``).
    """
    target = target_train if target_val is None else target_train.concat(target_val)
    head_classes: tuple[str, ...] = tuple(backbone.source_classes) if backbone is not None else ()
    source_classes = head_classes or (source.classes if source is not None else ())
    source_labels = None
    if source is not None and source.y is not None:
        source_labels = _labels_by_name(source, source_classes)

    if backbone is None:
        return MetricInputs(
            target_features=_table(target), target_labels=target.y, target_classes=target.classes,
            source_features=None if source is None else _table(source), source_labels=source_labels,
            source_classes=source_classes,
            unlabeled_target_features=None if target_unlabeled is None else _table(target_unlabeled),
            device=device, seed=seed,
        )

    if cache is None:
        from advisor.features.cache import FeatureCache

        cache = FeatureCache(device=device)

    def probs(domain: Domain) -> np.ndarray | None:
        logits = cache.logits(backbone, domain)
        return None if logits is None else softmax(logits.astype(np.float64))

    return MetricInputs(
        target_features=cache.features(backbone, target), target_labels=target.y,
        target_classes=target.classes,
        source_features=None if source is None else cache.features(backbone, source),
        source_labels=source_labels, source_classes=source_classes,
        source_probs=probs(target),
        source_probs_on_source=probs(source) if source is not None and head_classes else None,
        unlabeled_target_features=(None if target_unlabeled is None
                                   else cache.features(backbone, target_unlabeled)),
        device=device, seed=seed,
    )


def _labels_by_name(source: Domain, classes: tuple[str, ...]) -> np.ndarray | None:
    """Source labels re-indexed into ``classes`` by name; ``None`` if a name is missing there."""
    if tuple(classes) == source.classes:
        return source.y
    index = {c: i for i, c in enumerate(classes)}
    if not all(c in index for c in source.classes):
        return None
    lookup = np.array([index[c] for c in source.classes], dtype=np.int64)
    return lookup[source.y]


def unmet_needs(needs: Needs, inputs: MetricInputs) -> str | None:
    """The generic reason ``needs`` are not met by ``inputs`` (for metrics without ``applicable``)."""
    if needs.source_data and inputs.source_features is None:
        return "needs source data (--source)"
    if needs.source_predictions and inputs.source_probs is None:
        return "needs the source model's predictions on the target"
    if needs.unlabeled_target and inputs.unlabeled_target_features is None:
        return "needs unlabelled target data (--target-unlabeled)"
    if needs.source_model and inputs.source_probs is None:
        return "needs a source model"
    return None


def compute_signals(registry: Registry, inputs: MetricInputs, names: list[str] | None = None) -> Signals:
    """Run the named metrics (all registered ones when ``None``) on ``inputs``.

    Unknown names raise ``InputError``. A metric that cannot run goes to ``not_applicable``
    with its reason; one that raises (or returns something else than a ``MetricResult``) goes to
    ``errors`` and the others still run. Results keep the registry's order and get the metric's
    declared ``evidence`` kind.
    """
    metrics = list(registry.metrics.values()) if names is None else [registry.metric(n) for n in names]
    signals = Signals()
    for metric in metrics:
        check = getattr(metric, "applicable", None)
        reason = check(inputs) if callable(check) else unmet_needs(metric.needs, inputs)
        if reason:
            signals.not_applicable[metric.name] = reason
            continue
        try:
            result = metric.compute(inputs)
            if not isinstance(result, MetricResult):
                raise TypeError(f"compute returned {type(result).__name__}, not a MetricResult")
        except Exception as exc:  # a broken metric must not hide the others
            signals.errors[metric.name] = f"{type(exc).__name__}: {exc}"
            continue
        kind = getattr(metric, "evidence", None)
        if result.evidence is None and kind in EVIDENCE_KINDS:
            result.evidence = kind
        signals.results[metric.name] = result
    return signals
