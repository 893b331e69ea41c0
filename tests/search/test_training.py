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
from advisor.search.training import TrainConfig, config_from_params, predict, predict_proba, train


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


def _counting(calls: list[int]):
    """An extra loss of zero that counts the optimiser steps (one call per step)."""
    def extra(b):
        calls.append(len(b.target_y))
        return b.target_logits.sum() * 0.0
    return extra


def test_a_retrain_epoch_is_a_pass_over_the_rows_it_sees(task):
    """A retrain (no validation split) on twice the rows keeps the epochs, so it takes twice the steps; the
    ``train_rows`` the objective stores with a trial is bookkeeping, not a training setting."""
    searched: list[int] = []
    cfg = TrainConfig(epochs=3, lr=1e-2, batch_size=16, extra_loss=_counting(searched))
    res = train(task, task.backbone.with_new_head(3, seed=0), cfg, None)
    assert len(searched) == 3 * 4 == res.info["steps"]  # ceil(60 / 16) = 4 steps per epoch
    doubled = Domain("train+val", np.concatenate([task.target_train.X] * 2), np.concatenate([task.target_train.y] * 2),
                     task.target_train.classes, "features")
    full = TransferTask(source=None, target_train=doubled, target_val=None, backbone=task.backbone, max_epochs=5)
    retrained: list[int] = []
    cfg = config_from_params(full, {"epochs": 3, "lr": 1e-2, "batch_size": 16, "train_rows": 60}, "finetune",
                             extra_loss=_counting(retrained))
    res = train(full, full.backbone.with_new_head(3, seed=0), cfg, None)
    assert len(retrained) == 3 * 8 == res.info["steps"]  # ceil(120 / 16) = 8 steps per epoch
    assert sum(retrained) == 3 * 120  # each epoch covers every row once


def test_target_share_is_the_targets_share_of_the_loss(task):
    """alpha = 1 ignores the source rows, alpha = 0 the target labels: a share, whatever the split sizes."""
    source = _blobs(200, 3)
    no_source = _state(train(task, task.backbone.with_new_head(3, seed=0), TrainConfig(epochs=2), None).model)
    only_target = train(task, task.backbone.with_new_head(3, seed=0),
                        TrainConfig(epochs=2, source=source, target_share=1.0), None)
    assert only_target.info["target_share"] == 1.0
    for name, t in _state(only_target.model).items():
        assert torch.allclose(t, no_source[name], atol=1e-6), name
    shuffled = TransferTask(source=None, target_train=Domain("t", task.target_train.X, task.target_train.y[::-1].copy(),
                                                             task.target_train.classes, "features"),
                            target_val=task.target_val, backbone=task.backbone)
    models = [_state(train(t, t.backbone.with_new_head(3, seed=0),
                           TrainConfig(epochs=2, source=source, target_share=0.0), None).model)
              for t in (task, shuffled)]
    assert all(torch.equal(models[0][n], models[1][n]) for n in models[0])  # target labels carry no weight
    half = _state(train(task, task.backbone.with_new_head(3, seed=0),
                        TrainConfig(epochs=2, source=source, target_share=0.5), None).model)
    assert not torch.allclose(half["head.weight"], no_source["head.weight"])
    with pytest.raises(InputError, match="share"):
        train(task, task.backbone.with_new_head(3), TrainConfig(epochs=1, source=source, target_share=1.5), None)


def test_dropout_regularises_without_changing_the_network(task):
    plain = train(task, task.backbone.with_new_head(3, seed=0), TrainConfig(epochs=2, lr=1e-2), None).model
    dropped = train(task, task.backbone.with_new_head(3, seed=0), TrainConfig(epochs=2, lr=1e-2, dropout=0.5),
                    None).model
    a, b = _state(plain), _state(dropped)
    assert a.keys() == b.keys() and not torch.allclose(a["head.weight"], b["head.weight"])
    assert np.array_equal(predict(dropped, task.target_val.X), predict(dropped, task.target_val.X))  # eval: identity


def test_alignment_floor_fills_both_domains_on_a_tiny_target(task):
    """With 30 target rows and batches of 8, every step of the extra loss sees >= 32 rows per domain."""
    small = TransferTask(source=None, target_train=task.target_val, target_val=task.target_train,
                         backbone=task.backbone)
    seen: list[tuple[int, int]] = []

    def extra(b):
        target = [b.target_features] + [t for t in (b.unlabeled_features, b.extra_target_features) if t is not None]
        seen.append((len(b.source_features), sum(len(t) for t in target)))
        return b.target_logits.sum() * 0.0

    cfg = TrainConfig(epochs=2, batch_size=8, source=_blobs(50, 3), align_rows=32, extra_loss=extra)
    res = train(small, small.backbone.with_new_head(3, seed=0), cfg, None)
    assert len(seen) == 2 * 4 and all(s >= 32 and t >= 32 for s, t in seen)
    assert res.info["alignment_rows"] == 32


def test_side_streams_give_full_batches():
    from advisor.search.training import _Stream

    s = _Stream(10, 4, seed=0)
    draws = [s.take(4) for _ in range(5)]  # 20 rows: two full passes, no short batch
    assert all(len(d) == 4 for d in draws)
    rows = torch.cat(draws)
    assert sorted(rows[:10].tolist()) == list(range(10)) and sorted(rows[10:].tolist()) == list(range(10))
    assert len(s.take(25)) == 25  # more than one pass: rows repeat


# --------------------------------------------------------------------------- images: uint8, augmentation, AMP


def _image_task(side: int, n: int = 24, dtype: type = np.uint8, seed: int = 0) -> TransferTask:
    """Two-class images (bright left half vs bright right half) stored as uint8 or float32 in [0, 1]."""
    rng = np.random.default_rng(seed)

    def domain(name: str, rows: int) -> Domain:
        y = np.arange(rows) % 2
        X = rng.integers(0, 60, size=(rows, 1, side, side)).astype(np.uint8)
        for i, c in enumerate(y):
            X[i, :, :, : side // 2] += 150 if c == 0 else 0
            X[i, :, :, side // 2 :] += 150 if c == 1 else 0
        if dtype is not np.uint8:
            X = X.astype(np.float32) / 255.0
        return Domain(name, X, y, ("left", "right"), "images")

    spec = ModelSpec("cnn", "images", (1, side, side), {"width": 4})
    return TransferTask(source=None, target_train=domain("t", n), target_val=domain("v", n // 2),
                        backbone=build(spec, 2, seed=0), cache=FeatureCache(), max_epochs=2, batch_size=8)


@pytest.mark.parametrize("k", [0, 2])
def test_uint8_images_train_as_their_float_copy(k):
    models = []
    for dtype in (np.uint8, np.float32):
        t = _image_task(16, dtype=dtype)
        cfg = TrainConfig(epochs=2, lr=1e-2, freeze=k)
        res = train(t, t.backbone.with_new_head(2, seed=1), cfg, None)
        models.append(res)
    a, b = (_state(r.model) for r in models)
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-5), name
    assert np.array_equal(models[0].val_pred, models[1].val_pred)
    t = _image_task(16)
    assert np.allclose(predict_proba(models[0].model, t.target_val.X),
                       predict_proba(models[0].model, t.target_val.X.astype(np.float32) / 255), atol=1e-6)


def test_augment_batch_crops_flips_and_is_seeded():
    from advisor.search.training import augment_batch

    x = torch.rand(6, 3, 32, 32)
    a = augment_batch(x, torch.Generator().manual_seed(0))
    b = augment_batch(x, torch.Generator().manual_seed(0))
    assert a.shape == x.shape and torch.equal(a, b)
    assert not torch.allclose(a, x, atol=1e-3)  # every image is re-cropped
    flat = torch.full((2, 1, 16, 16), 0.25)
    assert torch.allclose(augment_batch(flat, torch.Generator().manual_seed(1)), flat)  # no border artefacts
    ramp = torch.linspace(0, 1, 16).expand(1, 1, 16, 16).repeat(64, 1, 1, 1)  # left dark, right bright
    out = augment_batch(ramp, torch.Generator().manual_seed(2))
    left_brighter = (out[..., :8].mean((1, 2, 3)) > out[..., 8:].mean((1, 2, 3))).float().mean()
    assert 0.3 < float(left_brighter) < 0.7  # about half the images are mirrored


def test_augmentation_on_raw_photos_off_with_a_cached_prefix():
    t = _image_task(64, n=16)
    raw = train(t, t.backbone.with_new_head(2, seed=0), TrainConfig(epochs=1, freeze=0), None)
    assert raw.info["augmentation"].startswith("random resized crop")
    cached = train(t, t.backbone.with_new_head(2, seed=0), TrainConfig(epochs=1, freeze=2), None)
    assert cached.info["augmentation"].startswith("off (cached frozen prefix")
    off = train(t, t.backbone.with_new_head(2, seed=0), TrainConfig(epochs=1, freeze=0, augment=False), None)
    assert off.info["augmentation"] == "off (turned off)"
    assert not all(torch.equal(a, b) for a, b in zip(_state(raw.model).values(), _state(off.model).values(),
                                                      strict=True))
    small = _image_task(16)
    res = train(small, small.backbone.with_new_head(2, seed=0), TrainConfig(epochs=1), None)
    assert res.info["augmentation"] == "off (images under 64 px)"  # digits: a flip can change the class


def test_bf16_autocast_cached_and_uncached_agree_on_cpu(monkeypatch):
    """The mixed-precision path (bf16 on CUDA) exercised on the CPU: the cached prefix runs under autocast too."""
    from advisor.device import amp_dtype

    monkeypatch.setenv("TRANSFER_ADVISOR_AMP", "bf16")
    assert amp_dtype("cpu") == torch.bfloat16
    t = _image_task(16, n=32)
    fits = [train(t, t.backbone.with_new_head(2, seed=3), TrainConfig(epochs=3, lr=1e-2, freeze=2, use_cache=c),
                  None) for c in (True, False)]
    assert all(np.isfinite(f.history).all() for f in fits)
    assert np.mean(fits[0].val_pred == fits[1].val_pred) >= 0.9
    a, b = (_state(f.model) for f in fits)
    assert all(torch.allclose(a[n].float(), b[n].float(), atol=5e-2) for n in a)
    monkeypatch.setenv("TRANSFER_ADVISOR_AMP", "off")
    assert amp_dtype("cpu") is None


def test_streams_draw_on_the_given_device():
    from advisor.search.training import _Stream

    s = _Stream(10, 4, seed=0, device="cpu")
    old = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(torch.cat([s.next() for _ in range(3)]), old)  # same draws as a host generator
    assert s.next().device.type == "cpu"
