"""The shared training engine: determinism, caching, frozen blocks, report, NaN handling, predict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advisor.data.domain import Domain
from advisor.device import autocast, resolve_device, set_threads
from advisor.errors import InputError, TrainingDiverged
from advisor.features.cache import FeatureCache
from advisor.models.architectures import build
from advisor.models.backbone import ModelSpec
from advisor.plugin.contracts import TransferTask
from advisor.search.training import TrainConfig, predict, predict_proba, train


def _blobs(n: int, seed: int) -> Domain:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    X[np.arange(n), y] += 3.0
    return Domain(f"blobs{seed}", X, y, ("a", "b", "c"), "features")


@pytest.fixture
def task() -> TransferTask:
    torch.manual_seed(0)
    spec = ModelSpec("mlp", "features", (6,), {"hidden": (16, 16)})
    backbone = build(spec, 3, seed=0)
    return TransferTask(source=None, target_train=_blobs(60, 0), target_val=_blobs(30, 1),
                        backbone=backbone, cache=FeatureCache(), max_epochs=5, batch_size=16)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_learns_and_reports_every_epoch(task):
    seen: list[tuple[int, float]] = []
    res = train(task, task.backbone.with_new_head(3, seed=0), TrainConfig(epochs=6, lr=1e-2),
                lambda e, v: seen.append((e, v)))
    assert [e for e, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert res.history == [v for _, v in seen]
    assert res.val_score == max(res.history) and res.val_score > 0.8
    assert res.history[res.epochs - 1] == res.val_score
    assert np.mean(res.val_pred == task.target_val.y) == pytest.approx(res.val_score)
    assert np.array_equal(predict(res.model, task.target_val.X), res.val_pred)


@pytest.mark.parametrize("k", [1, 2])
def test_cached_and_uncached_give_the_same_model(task, k):
    models = []
    for use_cache in (True, False):
        cfg = TrainConfig(epochs=3, lr=1e-2, freeze=k, use_cache=use_cache)
        models.append(train(task, task.backbone.with_new_head(3, seed=1), cfg, None).model)
    a, b = (_state(m) for m in models)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name


def test_same_seed_same_model_and_frozen_blocks_untouched(task):
    before = _state(task.backbone)
    runs = [train(task, task.backbone.with_new_head(3, seed=2), TrainConfig(epochs=2, freeze=1, lr=1e-2), None)
            for _ in range(2)]
    s0, s1 = _state(runs[0].model), _state(runs[1].model)
    assert all(torch.equal(s0[n], s1[n]) for n in s0)
    for name, t in before.items():
        if name.startswith("blocks.0."):
            assert torch.equal(s0[name], t), name  # frozen: bit-identical
    assert not torch.equal(s0["blocks.1.0.weight"], before["blocks.1.0.weight"])  # trained
    assert all(torch.equal(t, task.backbone.state_dict()[n]) for n, t in before.items())  # source untouched


def test_nan_loss_stops_with_a_clear_error(task):
    cfg = TrainConfig(epochs=3, name="boom", extra_loss=lambda b: b.target_logits.sum() * float("nan"))
    with pytest.raises(TrainingDiverged, match=r"boom.*epoch 1"):
        train(task, task.backbone.with_new_head(3, seed=0), cfg, None)


def test_report_may_stop_training(task):
    class Pruned(Exception):
        pass

    def report(epoch: int, value: float) -> None:
        if epoch == 2:
            raise Pruned

    with pytest.raises(Pruned):
        train(task, task.backbone.with_new_head(3, seed=0), TrainConfig(epochs=5), report)


def test_without_validation_trains_all_epochs(task):
    task.target_val = None
    calls: list[int] = []
    res = train(task, task.backbone.with_new_head(3, seed=0), TrainConfig(epochs=4, lr=1e-2),
                lambda e, v: calls.append(e))
    assert calls == [] and res.epochs == 4 and res.val_score is None


def test_weighted_source_term_changes_the_model(task):
    source = _blobs(40, 3)
    base = train(task, task.backbone.with_new_head(3, seed=0), TrainConfig(epochs=2), None).model
    zero = TrainConfig(epochs=2, source=source, source_weights=np.zeros(40))
    with_zero = train(task, task.backbone.with_new_head(3, seed=0), zero, None).model
    one = TrainConfig(epochs=2, source=source, source_head_classes=3)
    with_src = train(task, task.backbone.with_new_head(3, seed=0), one, None).model
    head = "head.weight"
    assert torch.allclose(_state(base)[head], _state(with_zero)[head], atol=1e-6)  # zero weight = no source
    assert not torch.allclose(_state(base)[head], _state(with_src)[head])


def test_bad_settings_are_refused(task):
    with pytest.raises(InputError):
        train(task, task.backbone.with_new_head(3), TrainConfig(epochs=1, freeze=9), None)
    with pytest.raises(InputError):
        train(task, task.backbone.with_new_head(3), TrainConfig(epochs=1, optimizer="lbfgs"), None)


def test_predict_proba_rows_sum_to_one(task):
    p = predict_proba(task.backbone, task.target_val.X)
    assert p.shape == (30, 3) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_device_helpers():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in {"cpu", "cuda"}
    with pytest.raises(InputError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError):
            resolve_device("cuda:0")
    with pytest.raises(InputError):
        set_threads(0)
    with autocast("cpu"):
        assert torch.ones(2).dtype == torch.float32
