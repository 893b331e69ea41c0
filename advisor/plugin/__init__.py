"""The plugin SDK: the one module a Transfer Advisor plugin imports from the advisor.

A plugin is a module of ``@hookimpl`` functions that receive a typed ``register`` callback::

    from advisor.plugin import Needs, StrategyRegister, hookimpl

    @hookimpl
    def advisor_register_strategies(register: StrategyRegister) -> None:
        register(MyStrategy())

What is here, by use (see docs/writing-plugins.md and examples/advisor-example-plugin):

- hooks: ``hookimpl``, ``StrategyRegister``, ``MetricRegister``, ``ScenarioRegister``;
- contracts: ``Strategy``, ``Metric``, ``Scenario`` (Protocols: the members a plugin object must
  have), ``TransferTask``, ``FitResult``, ``Needs``, ``Risk``, ``MetricInputs``, ``MetricResult``,
  ``ScenarioData``, ``Domain``, ``TargetSplits``, ``ReportFn``; the vocabularies ``ROLES``
  (reference, probe, transfer), ``FAMILIES``, ``METRIC_KINDS`` and ``EVIDENCE_KINDS`` (what a
  metric's value means, with its scale); ``freeze_range`` (a strategy's declared freeze depths,
  or the default ``(0, depth)``);
- reading signals: ``signal_value`` (by metric name), ``evidence`` (by evidence kind),
  ``label_conflict`` (the one conflicting-label-semantics rule);
- the training engine: ``train``, ``TrainConfig``, ``config_from_params``, ``StepBatch``,
  ``default_batch_size``, ``predict``, ``predict_proba``, ``score``; models: ``build``, ``ModelSpec``,
  ``Backbone``, ``Standardize``, ``FeatureCache``, ``as_tensor``, ``resolve_device``;
- kernels: ``mmd_test``, ``gaussian_mmd2``, ``coral_distance`` (differentiable CORAL), ``DEFAULT_SCALES``,
  ``median_sq_distance`` (the median-heuristic bandwidth);
  ``knn_loo_accuracy``, ``KNN_K``;
- errors: ``InputError``, ``AdvisorFailure``, ``TrainingDiverged``; testing: ``build_registry``.

Importing this module does not import torch: the engine, model and kernel names load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from advisor.data.domain import Domain, TargetSplits
from advisor.errors import AdvisorFailure, InputError, TrainingDiverged
from advisor.metrics.neighbours import KNN_K, knn_loo_accuracy
from advisor.plugin.contracts import (
    EVIDENCE_KINDS,
    FAMILIES,
    METRIC_KINDS,
    ROLES,
    EvidenceKind,
    FitResult,
    Metric,
    MetricInputs,
    MetricKind,
    MetricResult,
    Needs,
    ReportFn,
    Risk,
    Scenario,
    ScenarioData,
    Strategy,
    StrategyFamily,
    StrategyRole,
    TransferTask,
    default_freeze_range,
    freeze_range,
    is_deterministic,
)
from advisor.plugin.evidence import Evidence, LabelConflict, evidence, label_conflict, signal_value
from advisor.plugin.hookspecs import MetricRegister, Register, ScenarioRegister, StrategyRegister, hookimpl
from advisor.search.scoring import score

if TYPE_CHECKING:  # resolved lazily at run time (torch); listed here for type checkers
    from advisor.features.cache import FeatureCache, as_tensor
    from advisor.metrics.kernels import (
        DEFAULT_SCALES,
        coral_distance,
        gaussian_mmd2,
        median_sq_distance,
        mmd_test,
        resolve_device,
    )
    from advisor.models.architectures import Standardize, build
    from advisor.models.backbone import Backbone, ModelSpec
    from advisor.plugin.registry import build_registry
    from advisor.search.training import (
        StepBatch,
        TrainConfig,
        config_from_params,
        default_batch_size,
        predict,
        predict_proba,
        train,
    )

#: Public name -> module it lives in, imported on first use (these modules import torch).
_LAZY: dict[str, str] = {
    "train": "advisor.search.training",
    "TrainConfig": "advisor.search.training",
    "config_from_params": "advisor.search.training",
    "StepBatch": "advisor.search.training",
    "default_batch_size": "advisor.search.training",
    "predict": "advisor.search.training",
    "predict_proba": "advisor.search.training",
    "build": "advisor.models.architectures",
    "Standardize": "advisor.models.architectures",
    "Backbone": "advisor.models.backbone",
    "ModelSpec": "advisor.models.backbone",
    "FeatureCache": "advisor.features.cache",
    "as_tensor": "advisor.features.cache",
    "to_float": "advisor.device",
    "mmd_test": "advisor.metrics.kernels",
    "gaussian_mmd2": "advisor.metrics.kernels",
    "coral_distance": "advisor.metrics.kernels",
    "DEFAULT_SCALES": "advisor.metrics.kernels",
    "median_sq_distance": "advisor.metrics.kernels",
    "resolve_device": "advisor.metrics.kernels",
    "build_registry": "advisor.plugin.registry",
}

__all__ = [
    # hooks
    "hookimpl", "StrategyRegister", "MetricRegister", "ScenarioRegister", "Register",
    # contracts and vocabularies
    "Strategy", "Metric", "Scenario", "TransferTask", "FitResult", "Needs", "Risk", "MetricInputs",
    "MetricResult", "ScenarioData", "Domain", "TargetSplits", "ReportFn", "StrategyFamily", "StrategyRole",
    "MetricKind", "EvidenceKind", "FAMILIES", "ROLES", "METRIC_KINDS", "EVIDENCE_KINDS", "freeze_range",
    "default_freeze_range", "is_deterministic",
    # reading signals
    "Evidence", "LabelConflict", "signal_value", "evidence", "label_conflict",
    # errors, scores, neighbours
    "InputError", "AdvisorFailure", "TrainingDiverged", "score", "knn_loo_accuracy", "KNN_K",
    # loaded on first use (_LAZY): engine, models, kernels, registry
    "train", "TrainConfig", "config_from_params", "StepBatch", "default_batch_size", "predict", "predict_proba",
    "build", "Standardize", "Backbone", "ModelSpec", "FeatureCache", "as_tensor", "to_float",
    "mmd_test", "gaussian_mmd2", "coral_distance", "DEFAULT_SCALES", "median_sq_distance", "resolve_device",
    "build_registry",
]


def __getattr__(name: str) -> Any:
    """Load a torch-backed name on first use (so that importing the SDK stays cheap)."""
    if name not in _LAZY:
        raise AttributeError(f"module 'advisor.plugin' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
