"""The reference baseline's setting is chosen by its mean over seeds (advisor.pipeline)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import optuna
import pytest
import torch

from advisor.data.domain import Domain
from advisor.pipeline import _select_reference
from advisor.plugin.contracts import FitResult, TransferTask

Y_VAL = np.arange(20) % 2


@dataclass
class _Task:
    """Just what _select_reference reads from a TransferTask."""

    target_val: Domain
    seed: int = 0


class _Lucky:
    """lr=1 is right on seed 0 only; lr=2 is right on 18 of 20 samples with every seed."""

    def fit(self, task, params, report):
        good = Y_VAL.copy()
        if params["lr"] == 1.0:
            pred = good if task.seed == 0 else 1 - good
        else:
            pred = good.copy()
            pred[:2] = 1 - pred[:2]
        return FitResult(model=None, val_score=None, val_pred=pred)


def test_reference_is_chosen_by_its_mean_over_seeds() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    strategy = _Lucky()
    study = optuna.create_study(direction="maximize")
    for lr, value in ((1.0, 1.0), (2.0, 0.9)):
        fit = strategy.fit(_Task(Domain("v", np.zeros((20, 1), np.float32), Y_VAL, ("a", "b"), "features")),
                           {"lr": lr}, None)
        study.add_trial(optuna.trial.create_trial(
            params={"lr": lr}, distributions={"lr": optuna.distributions.FloatDistribution(0.5, 3.0)},
            value=value, user_attrs={"val_pred": fit.val_pred.tolist()}))
    val = Domain("v", np.zeros((20, 1), np.float32), Y_VAL, ("a", "b"), "features")
    trial, preds = _select_reference(strategy, _Task(val), study, n_seeds=3, score_name="accuracy")
    assert trial.params["lr"] == 2.0
    assert preds.shape == (3, 20)
    assert _select_reference(strategy, _Task(val), optuna.create_study(), 3, "accuracy") is None


def test_trial_params_keep_the_fixed_ones_the_fit_used() -> None:
    from advisor.pipeline import trial_params

    dist = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    t = optuna.trial.create_trial(params={"lr": 1e-3}, distributions=dist, value=0.5,
                                  user_attrs={"params": {"lr": 1e-3, "batch_size": 8, "epochs": 30}})
    assert trial_params(t) == {"lr": 1e-3, "batch_size": 8, "epochs": 30}
    old = optuna.trial.create_trial(params={"lr": 1e-3}, distributions=dist, value=0.5)  # runs from before
    assert trial_params(old) == {"lr": 1e-3}


def test_seed_repeats_never_reuse_the_winning_trial() -> None:
    """The search's winning fit (seed 0, perfect here by luck) is not among the repeats: fresh seeds only."""
    from advisor.pipeline import _seed_predictions

    val = Domain("v", np.zeros((20, 1), np.float32), Y_VAL, ("a", "b"), "features")
    preds = _seed_predictions(_Lucky(), _Task(val), {"lr": 1.0}, n_seeds=5)
    assert preds.shape == (5, 20)
    assert not (preds == Y_VAL).any()  # every fresh seed shows lr=1's real quality


class _Counting(_Lucky):
    """_Lucky, remembering the seed of every fit."""

    def __init__(self) -> None:
        self.seeds: list[tuple[float, int]] = []

    def fit(self, task, params, report):
        self.seeds.append((params["lr"], task.seed))
        return super().fit(task, params, report)


def test_reference_candidates_are_screened_then_the_winner_gets_every_seed() -> None:
    """Three candidates get 2 seeds each; only the best mean gets the remaining 3, on fresh seeds."""
    from advisor.pipeline import REFERENCE_SCREEN_SEEDS, SEED_STEP

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    dist = {"lr": optuna.distributions.FloatDistribution(0.5, 3.0)}
    for lr, value in ((1.0, 1.0), (2.0, 0.9), (2.5, 0.8)):
        study.add_trial(optuna.trial.create_trial(params={"lr": lr}, distributions=dist, value=value))
    val = Domain("v", np.zeros((20, 1), np.float32), Y_VAL, ("a", "b"), "features")
    strategy = _Counting()
    trial, preds = _select_reference(strategy, _Task(val), study, n_seeds=5, score_name="accuracy")
    assert trial.params["lr"] in (2.0, 2.5) and preds.shape == (5, 20)
    assert len(strategy.seeds) == 3 * REFERENCE_SCREEN_SEEDS + (5 - REFERENCE_SCREEN_SEEDS)
    winner = sorted(s for lr, s in strategy.seeds if lr == trial.params["lr"])
    assert winner == [SEED_STEP * r for r in range(1, 6)]  # the same fresh seeds as every other arm


@dataclass
class _Full:
    """What _retrain reads from a TransferTask: the splits it joins, the seed it replaces, the device."""

    target_train: Domain
    target_val: Domain
    seed: int = 0
    device: str = "cpu"


class _Deterministic(_Counting):
    """The same predictions for every seed (a convex fit from a fixed start), declared."""

    deterministic = True

    def fit(self, task, params, report):
        self.seeds.append((params["lr"], task.seed))
        pred = Y_VAL.copy()
        pred[: int(params["lr"])] = 1 - pred[: int(params["lr"])]
        return FitResult(model=None, val_score=None, val_pred=pred)


def test_a_deterministic_strategy_is_fitted_once_for_every_seed() -> None:
    """Seed repeats, the reference's selection and the retrains fit a deterministic setting once; its
    predictions stand for every seed, so every arm still has n_seeds rows (with no spread between them)."""
    from types import SimpleNamespace

    from advisor.pipeline import _retrain, _seed_predictions

    val = Domain("v", np.zeros((20, 1), np.float32), Y_VAL, ("a", "b"), "features")
    strategy = _Deterministic()
    preds = _seed_predictions(strategy, _Task(val), {"lr": 2.0}, n_seeds=5)
    assert preds.shape == (5, 20) and (preds == preds[0]).all() and len(strategy.seeds) == 1
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    dist = {"lr": optuna.distributions.FloatDistribution(0.5, 3.0)}
    for lr, value in ((1.0, 0.95), (2.0, 0.9), (3.0, 0.85)):
        study.add_trial(optuna.trial.create_trial(params={"lr": lr}, distributions=dist, value=value))
    strategy = _Deterministic()
    trial, preds = _select_reference(strategy, _Task(val), study, n_seeds=5, score_name="accuracy")
    assert trial.params["lr"] == 1.0 and preds.shape == (5, 20)
    assert strategy.seeds == [(1.0, 1000)]  # no screening: it would only reproduce the trials' ranking

    class _Retrained(_Deterministic):
        def fit(self, task, params, report):
            self.seeds.append((params["lr"], task.seed))
            return FitResult(model=torch.nn.Linear(1, 2), val_score=None, val_pred=None)

    strategy = _Retrained()
    test = SimpleNamespace(X=np.zeros((7, 1), np.float32))
    model, test_pred = _retrain(strategy, _Full(val, val), {"lr": 1.0}, 5, test)
    assert test_pred.shape == (5, 7) and (test_pred == test_pred[0]).all() and len(strategy.seeds) == 1
    assert isinstance(model, torch.nn.Linear)
    _, more = _retrain(strategy, _Full(val, val), {"lr": 1.0}, 5, test, start=5)  # a second look: one more fit
    assert more.shape == (5, 7) and len(strategy.seeds) == 2


def test_recommend_without_any_strategy_plugin_says_so() -> None:
    import pytest

    from advisor.errors import AdvisorFailure
    from advisor.models.inputs import InputRequest
    from advisor.pipeline import RecommendOptions, recommend
    from advisor.plugin.registry import build_registry

    with pytest.raises(AdvisorFailure, match="no strategy plugin is registered"):
        recommend(InputRequest(demo="digits-shift"), RecommendOptions(meta_store="none"),
                  build_registry(load_entry_points=False))


def _split_task(n_train: int, n_val: int) -> TransferTask:
    y = np.arange(n_train + n_val) % 2
    d = Domain("t", np.zeros((len(y), 1), np.float32), y, ("a", "b"), "features")
    return TransferTask(source=None, target_train=d.subset(np.arange(n_train)),  # type: ignore[arg-type]
                        target_val=d.subset(np.arange(n_train, len(y))), backbone=None, seed=3)


def test_b_and_the_reference_are_picked_by_cross_validation_when_there_is_one() -> None:
    """Validation (30 training rows) and cross-validation (the retrain's size) disagree: the latter picks."""
    from advisor.pipeline import _pick

    task = _split_task(30, 100)
    roles = {"target_only": "reference", "target_linear": "reference", "a": "transfer", "b": "transfer"}
    means = {"target_only": 0.40, "target_linear": 0.33, "a": 0.50, "b": 0.47}
    cv = {"target_only": 0.47, "target_linear": 0.55, "a": 0.49, "b": 0.58}
    prior = ["a", "target_only", "b", "target_linear"]
    ref = _pick("reference", means, cv, roles, prior, task, {}, "accuracy")
    b = _pick("transfer", means, cv, roles, prior, task, {}, "accuracy")
    assert (ref.name, ref.method, b.name, b.method) == ("target_linear", "crossval", "b", "crossval")
    assert ref.band == pytest.approx(1 / 130) and b.scores == {"a": 0.49, "b": 0.58}
    # within one row of train+val the quick advice decides
    tied = _pick("transfer", means, {**cv, "a": 0.58 - 0.5 / 130}, roles, prior, task, {}, "accuracy")
    assert tied.name == "a"


def test_without_cross_validated_candidates_the_pick_falls_back_to_validation() -> None:
    from advisor.pipeline import _pick

    task = _split_task(30, 100)
    y = task.target_val.y
    preds = {"a": np.stack([y, y]), "b": np.stack([1 - y, y]), "target_only": np.stack([y, 1 - y])}
    roles = {"target_only": "reference", "a": "transfer", "b": "transfer"}
    means = {"a": 1.0, "b": 0.5, "target_only": 0.5}
    b = _pick("transfer", means, {"target_only": 0.6}, roles, ["b", "a"], task, preds, "accuracy")
    assert (b.name, b.method) == ("a", "validation") and b.band >= 1 / 100
    ref = _pick("reference", means, {"target_only": 0.6}, roles, ["b", "a"], task, preds, "accuracy")
    assert (ref.name, ref.method) == ("target_only", "crossval")
