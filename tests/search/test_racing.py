"""Racing: strategies out of contention after the first round stop receiving trials, deterministically."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from advisor.search.study import (
    RACE_FIRST_ROUND,
    SearchState,
    apply_racing,
    race_decision,
    race_margin,
    stopped,
)

N_VAL = 50  # margin max(2/50, 0.02) = 0.04


@dataclass
class FakeStrategy:
    name: str
    role: str = "transfer"


def _state(name: str, scores: list[float | None], role: str = "transfer", budget: int = 6) -> SearchState:
    study = optuna.create_study(direction="maximize")
    for i, v in enumerate(scores):
        state = TrialState.PRUNED if v is None else TrialState.COMPLETE
        study.add_trial(create_trial(params={"x": float(i)}, distributions={"x": FloatDistribution(0, 100)},
                                     value=v, state=state, intermediate_values={0: 0.0} if v is None else {}))
    return SearchState(FakeStrategy(name, role), study, budget)


def test_margin_is_two_validation_samples_with_a_floor():
    assert race_margin(50) == pytest.approx(0.04)
    assert race_margin(1000) == pytest.approx(0.02)


def test_a_trailing_strategy_is_dropped_after_the_first_round_with_its_reason():
    leader = _state("leader", [0.80, 0.82, 0.81])
    trailing = _state("trailing", [0.60, 0.62, 0.61])
    states = [leader, trailing]
    apply_racing(states, N_VAL)
    assert stopped(leader.study) is None
    stop = stopped(trailing.study)
    assert stop["after_trials"] == RACE_FIRST_ROUND
    assert "leader" in stop["reason"] and "0.620" in stop["reason"]
    assert trailing.done and not leader.done


def test_within_the_margin_a_strategy_stays_in_the_race():
    states = [_state("leader", [0.80, 0.82, 0.81]), _state("close", [0.79, 0.70, 0.785])]
    apply_racing(states, N_VAL)
    assert all(stopped(s.study) is None for s in states)


def test_a_reference_is_never_dropped():
    states = [_state("leader", [0.9, 0.9, 0.9]), _state("ref", [0.3, 0.3, 0.3], role="reference")]
    apply_racing(states, N_VAL)
    assert stopped(states[1].study) is None


def test_no_decision_before_every_strategy_has_its_first_round():
    slow = _state("slow", [0.9, 0.9])  # two trials only: the first round is not in
    trailing = _state("trailing", [0.1, 0.1, 0.1])
    assert race_decision([slow, trailing], trailing, N_VAL) is None
    slow.study.add_trial(create_trial(params={"x": 9.0}, distributions={"x": FloatDistribution(0, 100)}, value=0.9))
    assert race_decision([slow, trailing], trailing, N_VAL)["after_trials"] == 3


def test_the_decision_depends_only_on_the_first_k_trials_in_number_order():
    """A process that checks late (more trials finished) stops the strategy at the same k."""
    leader = _state("leader", [0.80, 0.80, 0.80, 0.80, 0.80])
    trailing = _state("trailing", [0.60, 0.60, 0.60, 0.79, 0.79])  # caught up later
    decision = race_decision([leader, trailing], trailing, N_VAL)
    assert decision is not None and decision["after_trials"] == 3


def test_a_late_improvement_within_the_first_round_keeps_it_in():
    leader = _state("leader", [0.80, 0.80, 0.80, 0.80])
    improving = _state("improving", [0.50, 0.50, 0.79, 0.50])
    assert race_decision([leader, improving], improving, N_VAL) is None
