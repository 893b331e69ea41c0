"""Quick advice: evidence read by kind, roles not names, the raw-input evidence, the one conflict rule."""

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


def _signal(value: float, kind: str, higher_is_better: bool = True) -> MetricResult:
    return MetricResult(value, higher_is_better, "", evidence=kind)


def _order(strategies, task: TransferTask, knn: float) -> tuple[list[str], float]:
    signals = {"any_name": _signal(knn, "feature_quality"), "other": _signal(1.0, "domain_distance", False)}
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
    row = next(r for r in quick_advice(strategies, {"q": _signal(1.0, "feature_quality")}, task).ranking
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


def test_evidence_is_read_by_kind_not_by_name(strategies) -> None:
    """A metric under any name counts by its evidence kind; an undeclared one is not read at all."""
    task = _task(signal=0.0)
    by_kind = quick_advice(strategies, {"my_quality": _signal(0.9, "feature_quality"),
                                        "my_distance": _signal(1.0, "domain_distance", False)}, task)
    assert by_kind.evidence["feature_quality"] == pytest.approx((0.9 - 0.25) / 0.75, abs=1e-4)
    assert by_kind.evidence["similarity"] == pytest.approx(0.5)
    undeclared = quick_advice(strategies, {"knn": MetricResult(0.9, True, "")}, task)
    assert undeclared.evidence["feature_quality"] == 0.5  # no evidence kind: no evidence either way


class _Renamed:
    """A built-in strategy under another name: the advice must treat it exactly the same."""

    def __init__(self, inner, name: str) -> None:
        self._inner, self.name = inner, name

    def __getattr__(self, attr: str):
        return getattr(self._inner, attr)


def test_roles_not_names_decide_the_weights(strategies) -> None:
    # The hand-set rule (model=None): a learned model is keyed by the strategies it has records of.
    task = _task(signal=8.0)
    signals = {"q": _signal(0.6, "feature_quality")}
    original = {r.strategy: r.prior_score for r in quick_advice(strategies, signals, task, model=None).ranking}
    renamed = [_Renamed(s, f"third_party_{i}") for i, s in enumerate(strategies)]
    scores = {r.strategy: r.prior_score for r in quick_advice(renamed, signals, task, model=None).ranking}
    assert [scores[f"third_party_{i}"] for i in range(len(strategies))] == [original[s.name] for s in strategies]


def _conflict_task() -> TransferTask:
    from advisor.data.domain import Domain

    task = _task(signal=8.0)
    rng = np.random.default_rng(1)
    source = Domain("s", rng.normal(size=(8, 16)).astype(np.float32), np.arange(8) % 4, ("a", "b", "c", "d"),
                    "features")
    task.source = source
    return task


def test_one_conflicting_labels_rule_flags_every_source_label_strategy_once() -> None:
    """Informative source predictions (NCE near 0) that are mostly wrong: a high risk, cited once."""
    reg = build_registry(load_entry_points=True)
    task = _conflict_task()
    signals = {"nce_like": _signal(-0.1, "label_predictability"), "zero_shot": _signal(0.05, "source_head_accuracy")}
    advice = quick_advice(reg.select_strategies(None), signals, task)
    source_label = {s.name for s in reg.strategies.values() if s.needs.source_data}
    assert source_label  # the built-ins have some
    for row in advice.ranking:
        flagged = [r for r in row.reasons if r.startswith("conflicting label semantics")]
        assert len(flagged) == (1 if row.strategy in source_label else 0), row.strategy
        if flagged:
            assert row.risk == "high" and "NCE_LIKE" in flagged[0] and "zero_shot 0.05" in flagged[0]
    # accurate source predictions are no conflict
    fine = {**signals, "zero_shot": _signal(0.9, "source_head_accuracy")}
    assert not any(r.startswith("conflicting") for row in quick_advice(reg.select_strategies(None), fine, task).ranking
                   for r in row.reasons)
