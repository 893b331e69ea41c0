"""Signals: inputs from train+val only, reasons for metrics that cannot run, errors isolated."""

from __future__ import annotations

import types

import advisor_plugins.metrics as builtin_metrics
import numpy as np
import pytest
import torch
from torch import nn

from advisor import hookimpl
from advisor.data.domain import Domain, split_target
from advisor.metrics.signals import compute_signals, metric_inputs, softmax
from advisor.models.backbone import Backbone, ModelSpec
from advisor.plugin.contracts import MetricResult, Needs
from advisor.plugin.registry import build_registry


def _domain(name: str, rng: np.random.Generator, n: int = 60, shift: float = 0.0) -> Domain:
    y = np.repeat(np.arange(3), n // 3)
    x = (rng.normal(size=(n, 4)) + y[:, None] + shift).astype(np.float32)
    return Domain(name, x, y, ("a", "b", "c"), "features")


class _Broken:
    name, kind, description, needs = "broken", "similarity", "always fails", Needs()

    def compute(self, inputs: object) -> MetricResult:
        raise RuntimeError("boom")


class _NeedsUnlabelled:
    name, kind, description = "wants_unlabelled", "similarity", "needs unlabelled target"
    needs = Needs(unlabeled_target=True)

    def compute(self, inputs: object) -> MetricResult:
        return MetricResult(1.0, True, "ran")


class _NotAResult:
    name, kind, description, needs = "not_a_result", "similarity", "returns a float", Needs()

    def compute(self, inputs: object) -> float:
        return 0.5


def _fakes() -> types.SimpleNamespace:
    @hookimpl
    def advisor_register_metrics(register: object) -> None:
        register(_Broken())
        register(_NeedsUnlabelled())
        register(_NotAResult())

    return types.SimpleNamespace(advisor_register_metrics=advisor_register_metrics)


def test_feature_tables_without_model_are_used_as_stored_and_exclude_test() -> None:
    rng = np.random.default_rng(0)
    source, target = _domain("s", rng), _domain("t", rng, n=90, shift=1.0)
    splits = split_target(target, seed=0)
    inp = metric_inputs(source, splits.train, splits.val, None, None, None, "cpu", 0)
    expect = np.concatenate([splits.train.X, splits.val.X])
    assert np.array_equal(inp.target_features, expect)
    assert len(inp.target_features) == len(target) - len(splits.test)
    assert np.array_equal(inp.source_features, source.X) and inp.source_probs is None


def test_compute_signals_reports_reasons_and_isolates_errors() -> None:
    rng = np.random.default_rng(1)
    reg = build_registry(load_entry_points=False,
                         plugins=[("builtin_metrics", builtin_metrics), ("fakes", _fakes())])
    target = _domain("t", rng, n=90)
    splits = split_target(target, seed=0)
    signals = compute_signals(reg, metric_inputs(None, splits.train, splits.val, None, None, None, "cpu", 0))
    assert signals.errors == {"broken": "RuntimeError: boom",
                              "not_a_result": "TypeError: compute returned float, not a MetricResult"}
    assert set(signals.results) == {"logme", "hscore", "knn"}
    # each result carries the evidence kind its metric declares: what the quick advice reads
    assert {n: r.evidence for n, r in signals.results.items()} == {
        "logme": "feature_fit", "hscore": "feature_fit", "knn": "feature_quality"}
    assert {"mmd", "pad", "coral", "label_shift", "leep", "nce", "source_accuracy",
            "wants_unlabelled"} == set(signals.not_applicable)
    assert "--target-unlabeled" in signals.not_applicable["wants_unlabelled"]
    doc = signals.to_json()
    assert set(doc) == {"metrics", "not_applicable", "errors"}
    assert set(doc["metrics"]["knn"]) >= {"value", "p_value", "direction", "interpretation"}
    assert doc["metrics"]["knn"]["direction"] == "higher_is_better"


def test_backbone_gives_features_and_source_probabilities() -> None:
    rng = np.random.default_rng(2)
    torch.manual_seed(0)
    spec = ModelSpec("mlp", "features", (4,))
    backbone = Backbone([nn.Sequential(nn.Linear(4, 6), nn.ReLU())], nn.Linear(6, 3), 6, spec,
                        source_classes=("a", "b", "c"))
    source, target = _domain("s", rng), _domain("t", rng, n=90, shift=0.5)
    splits = split_target(target, seed=0)
    inp = metric_inputs(source, splits.train, splits.val, None, backbone, None, "cpu", 0)
    assert inp.target_features.shape == (len(splits.train) + len(splits.val), 6)
    with torch.no_grad():
        x = torch.from_numpy(np.concatenate([splits.train.X, splits.val.X]))
        expect = softmax(backbone(x).numpy().astype(np.float64))
    assert np.allclose(inp.source_probs, expect, atol=1e-6)
    assert inp.source_probs_on_source.shape == (len(source), 3)
    reg = build_registry(load_entry_points=False, plugins=[("builtin_metrics", builtin_metrics)])
    signals = compute_signals(reg, inp)
    assert not signals.errors and not signals.not_applicable
    assert signals.results["source_accuracy"].value == pytest.approx(
        float(np.mean(expect.argmax(1) == np.concatenate([splits.train.y, splits.val.y]))))
