"""Quick advice: the raw-input evidence moves target_only and the linear probe the right way."""

from __future__ import annotations

import numpy as np
import pytest

from advisor.advice.quick import quick_advice
from advisor.models.architectures import ModelSpec, build
from advisor.plugin.contracts import MetricResult, TransferTask
from advisor.plugin.registry import build_registry


def _task(signal: float) -> TransferTask:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 6)
    X = (rng.normal(size=(len(y), 16)) + signal * np.eye(16)[y]).astype(np.float32)
    from advisor.data.domain import Domain

    d = Domain("t", X, y, ("a", "b", "c", "d"), "features")
    backbone = build(ModelSpec("mlp", "features", (16,)), 4, seed=0)
    return TransferTask(source=None, target_train=d.subset(np.arange(0, 24, 2), "train"),
                        target_val=d.subset(np.arange(1, 24, 2), "val"), backbone=backbone)


@pytest.fixture(scope="module")
def strategies():
    reg = build_registry(load_entry_points=True)
    return [s for s in reg.select_strategies(None) if s.name in ("target_only", "linear_probe", "finetune")]


def _order(strategies, task: TransferTask, knn: float) -> tuple[list[str], float]:
    signals = {"knn": MetricResult(knn, True, ""), "pad": MetricResult(1.0, False, "")}
    advice = quick_advice(strategies, signals, task)
    return [r.strategy for r in advice.ranking], advice.evidence["raw_quality"]


def test_separable_raw_inputs_put_target_only_above_a_mediocre_probe(strategies) -> None:
    order, raw = _order(strategies, _task(signal=8.0), knn=0.6)
    assert raw > 0.8  # the raw inputs separate the classes
    assert order.index("target_only") < order.index("linear_probe")


def test_excellent_features_and_poor_raw_inputs_favour_transfer(strategies) -> None:
    task = _task(signal=0.0)
    order, raw = _order(strategies, task, knn=1.0)
    assert raw < 0.4  # pure noise: near chance
    assert order[-1] == "target_only"
    row = next(r for r in quick_advice(strategies, {"knn": MetricResult(1.0, True, "")}, task).ranking
               if r.strategy == "target_only")
    assert row.risk == "medium" and "raw inputs separate the classes poorly" in row.reasons[0]


def test_best_transfer_breaks_validation_ties_by_the_prior() -> None:
    from advisor.pipeline import StrategyRow, best_transfer

    def row(name: str, val: float) -> StrategyRow:
        return StrategyRow(name, "x", "complete", {}, val, val, None, None, None, False, "low", [], 6, 6, [])

    rows = [row("l2sp", 0.570), row("progressive_unfreezing", 0.566), row("finetune", 0.40)]
    prior = ["finetune", "progressive_unfreezing", "l2sp"]
    assert best_transfer(rows, prior, n_val=100).strategy == "progressive_unfreezing"  # 0.004 < 1/100: tied
    assert best_transfer(rows, prior, n_val=1000).strategy == "l2sp"  # 0.004 > 1/1000: l2sp is better
    assert best_transfer([row("a", 0.5), row("b", 0.5)], [], n_val=10).strategy == "a"  # no prior: by name
