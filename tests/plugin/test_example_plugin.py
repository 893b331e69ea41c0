"""The example plugin package in examples/ registers and its strategy trains through the engine."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "advisor-example-plugin" / "src"))

import advisor_example_plugin  # noqa: E402

from advisor.data.domain import Domain  # noqa: E402
from advisor.models.architectures import build  # noqa: E402
from advisor.models.backbone import ModelSpec  # noqa: E402
from advisor.plugin.contracts import MetricInputs, TransferTask  # noqa: E402
from advisor.plugin.registry import build_registry  # noqa: E402


def test_registers_its_metric_and_strategy():
    reg = build_registry(load_entry_points=False, plugins=[("example", advisor_example_plugin)])
    assert set(reg.metrics) == {"centroid_gap"} and set(reg.strategies) == {"head_only"}
    assert not reg.failures


def test_metric_and_strategy_work():
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(60, 4)).astype(np.float32)
    xt = (rng.normal(size=(60, 4)) + 3).astype(np.float32)
    gap = advisor_example_plugin.CentroidGap().compute(MetricInputs(xt, None, ("a", "b"), source_features=xs))
    assert gap.value == pytest.approx(np.linalg.norm(xs.mean(0) - xt.mean(0)) / np.concatenate([xs, xt]).std(0).mean())
    y = np.arange(60) % 2
    X = (rng.normal(size=(60, 4)) + 2.5 * y[:, None]).astype(np.float32)
    dom = Domain("t", X, y, ("a", "b"), "features")
    backbone = build(ModelSpec("mlp", "features", (4,), {"hidden": [16]}), 2, seed=0)
    task = TransferTask(None, dom.subset(np.arange(40)), dom.subset(np.arange(40, 60)), backbone, max_epochs=15)
    seen = []
    res = advisor_example_plugin.HeadOnly().fit(task, {"lr": 0.05}, lambda e, v: seen.append(e))
    assert seen == list(range(1, 16)) and res.val_score > 0.8
