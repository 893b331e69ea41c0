"""The example plugin package in examples/ is a correct template: it registers, and its strategy is an
optional probe on the source model that trains through the real engine at the depth it declares."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "advisor-example-plugin" / "src"))

import advisor_example_plugin  # noqa: E402

from advisor.data.domain import Domain  # noqa: E402
from advisor.features.cache import FeatureCache  # noqa: E402
from advisor.models.architectures import build  # noqa: E402
from advisor.models.backbone import ModelSpec  # noqa: E402
from advisor.plugin.contracts import MetricInputs, TransferTask  # noqa: E402
from advisor.plugin.registry import build_registry  # noqa: E402


def test_registers_its_metric_and_strategy():
    reg = build_registry(load_entry_points=False, plugins=[("example", advisor_example_plugin)])
    assert set(reg.metrics) == {"centroid_gap"} and set(reg.strategies) == {"head_only"}
    assert not reg.failures


def test_strategy_is_an_optional_probe_that_needs_a_source_model():
    """Not a baseline (those are forced into every search), and never run on a random backbone."""
    import advisor_plugins.strategies as builtin

    reg = build_registry(load_entry_points=False,
                         plugins=[("builtin", builtin), ("example", advisor_example_plugin)])
    strategy = reg.strategy("head_only")
    assert strategy.family != "baseline" and strategy.role == "probe"
    assert "head_only" not in [s.name for s in reg.select_strategies("l2sp")]  # runs only when asked for
    assert "head_only" in [s.name for s in reg.select_strategies("head_only")]
    assert _task(pretrained=False).unmet(strategy.needs) == "needs a pretrained source model"


def _task(pretrained: bool = True) -> TransferTask:
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    X = (rng.normal(size=(60, 4)) + 2.5 * y[:, None]).astype(np.float32)
    dom = Domain("t", X, y, ("a", "b"), "features")
    backbone = build(ModelSpec("mlp", "features", (4,), {"hidden": [16]}), 2, seed=0)
    return TransferTask(None, dom.subset(np.arange(40)), dom.subset(np.arange(40, 60)), backbone, max_epochs=15,
                        pretrained=pretrained)


def test_metric_and_strategy_work():
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(60, 4)).astype(np.float32)
    xt = (rng.normal(size=(60, 4)) + 3).astype(np.float32)
    gap = advisor_example_plugin.CentroidGap().compute(MetricInputs(xt, None, ("a", "b"), source_features=xs))
    assert gap.value == pytest.approx(np.linalg.norm(xs.mean(0) - xt.mean(0)) / np.concatenate([xs, xt]).std(0).mean())
    task = _task()
    task.cache = FeatureCache()
    blocks_before = [p.detach().clone() for b in task.backbone.blocks for p in b.parameters()]
    seen = []
    # freeze 0 asked for: the engine clamps it to the declared range (every block frozen)
    res = advisor_example_plugin.HeadOnly().fit(task, {"lr": 0.05, "freeze": 0}, lambda e, v: seen.append(e))
    assert seen == list(range(1, 16)) and res.val_score > 0.8
    assert res.info["freeze"] == task.depth and res.info["cached_prefix"]
    blocks_after = [p for b in res.model.blocks for p in b.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(blocks_before, blocks_after, strict=True))
