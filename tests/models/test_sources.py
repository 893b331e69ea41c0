"""Source models: torchvision weights mapping, missing weights, checkpoints, cached pretraining."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from advisor.data.domain import Domain
from advisor.errors import InputError
from advisor.models.architectures import IMAGENET_MEAN, IMAGENET_STD, build
from advisor.models.backbone import ModelSpec
from advisor.models.sources import (
    hub_weights_path,
    load_checkpoint,
    pretrain_source,
    save_checkpoint,
    torchvision_backbone,
)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small"])
def test_torchvision_weights_round_trip(tmp_path, arch):
    import torchvision

    torch.manual_seed(3)
    net = getattr(torchvision.models, arch)(weights=None, num_classes=5).eval()
    with torch.no_grad():  # non-default batch-norm statistics must be carried over too
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    path = tmp_path / f"{arch}.pth"
    torch.save(net.state_dict(), path)
    backbone = torchvision_backbone(arch, (3, 32, 32), str(path))
    assert backbone.source_classes == ("0", "1", "2", "3", "4")
    assert backbone.spec.options == {}  # pretrained weights keep the original stem
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), net(_normalise(x)))
        grey = torch.rand(2, 1, 48, 48)
        torch.testing.assert_close(backbone(grey), net(_normalise(grey.expand(-1, 3, -1, -1))))


def test_wrong_weights_for_architecture(tmp_path):
    import torchvision

    path = tmp_path / "mnv3.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), path)
    with pytest.raises(InputError, match=r"mnv3\.pth has \d+ entries; a resnet18 state dict has \d+"):
        torchvision_backbone("resnet18", (3, 32, 32), str(path))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"definitely not torch")
    with pytest.raises(InputError, match=r"cannot read .*garbage\.pth as a torchvision state dict"):
        torchvision_backbone("resnet18", (3, 32, 32), str(garbage))
    with pytest.raises(InputError, match=r"weights file not found: .*absent\.pth"):
        torchvision_backbone("resnet18", (3, 32, 32), str(tmp_path / "absent.pth"))


def test_missing_hub_weights_says_which_file_where(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    expected = tmp_path / "hub" / "checkpoints"
    assert hub_weights_path("resnet18") == expected / "resnet18-f37072fd.pth"
    with pytest.raises(InputError) as info:
        torchvision_backbone("resnet18", (3, 32, 32), None)
    msg = str(info.value)
    assert f"put resnet18-f37072fd.pth in {expected}" in msg and "--weights FILE" in msg
    assert "\n" not in msg


def test_hub_cache_weights_are_used_with_imagenet_classes(tmp_path, monkeypatch):
    import torchvision

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    path = hub_weights_path("mobilenet_v3_small")
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v3_small(weights=None).eval()
    torch.save(net.state_dict(), path)
    backbone = torchvision_backbone("mobilenet_v3_small", (3, 32, 32), None)
    assert len(backbone.source_classes) == 1000 and backbone.source_classes[0] == "tench"
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(backbone(x), net(_normalise(x)))


def test_checkpoint_round_trip(tmp_path):
    spec = ModelSpec("mlp", "features", (6,), {"hidden": [16, 8]})
    backbone = build(spec, 3, seed=1)
    backbone.source_classes = ("x", "y", "z")
    path = save_checkpoint(backbone, tmp_path / "sub" / "model.pt")
    loaded = load_checkpoint(path)
    assert loaded.spec == spec and loaded.source_classes == ("x", "y", "z")
    x = torch.randn(4, 6)
    backbone.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), backbone(x))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_corrupt_and_foreign_checkpoints(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x04garbage")
    with pytest.raises(InputError, match=r"cannot read .*corrupt\.pt as a Transfer Advisor checkpoint"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(InputError, match=r"foreign\.pt is not a Transfer Advisor checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(InputError, match=r"model file not found: .*absent\.pt"):
        load_checkpoint(tmp_path / "absent.pt")
    # a checkpoint whose weights do not fit its spec
    spec = ModelSpec("mlp", "features", (6,), {"hidden": [16]})
    backbone = build(spec, 2, seed=0)
    backbone.source_classes = ("a", "b")
    path = save_checkpoint(backbone, tmp_path / "m.pt")
    doc = torch.load(path, weights_only=True)
    doc["state_dict"].pop("head.bias")
    torch.save(doc, path)
    with pytest.raises(InputError, match=r"m\.pt: weights do not fit mlp"):
        load_checkpoint(path)


def _digit_source(n_per_class: int = 30) -> Domain:
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = np.concatenate([np.flatnonzero(d.target == c)[:n_per_class] for c in range(4)])
    X = (d.images[keep] / 16.0).astype(np.float32)[:, None]
    return Domain("source", X, d.target[keep].astype(np.int64), ("0", "1", "2", "3"), "images")


def test_pretraining_trains_and_the_cache_returns_the_same_weights(tmp_path):
    source = _digit_source()
    spec = ModelSpec("cnn", "images", (1, 8, 8), {"width": 8})
    first, note = pretrain_source(source, spec, seed=0, epochs=15, cache_dir=tmp_path)
    assert note.startswith("pretrained here on source (120 images, 15 epochs) and cached at")
    assert first.source_classes == source.classes
    with torch.no_grad():
        acc = (first(torch.from_numpy(source.X)).argmax(1).numpy() == source.y).mean()
    assert acc > 0.9  # it really learned the source
    second, note2 = pretrain_source(source, spec, seed=0, epochs=15, cache_dir=tmp_path)
    assert note2.startswith("loaded from cache") and str(tmp_path) in note2
    for (k, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    again, note3 = pretrain_source(source, spec, seed=0, epochs=15, cache_dir=tmp_path / "fresh")
    assert note3.startswith("pretrained here")  # deterministic for a seed on CPU
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    _, note4 = pretrain_source(source, spec, seed=1, epochs=15, cache_dir=tmp_path)
    assert note4.startswith("pretrained here")  # another seed is another cache entry


def test_pretraining_mlp_sets_standardisation_from_source(tmp_path):
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(60, 3)) * [1.0, 10.0, 100.0] + [5.0, -3.0, 50.0]).astype(np.float32)
    y = (X[:, 0] > 5.0).astype(np.int64)
    source = Domain("tab", X, y, ("lo", "hi"), "features")
    backbone, _ = pretrain_source(source, ModelSpec("mlp", "features", (3,)), seed=0, cache_dir=tmp_path)
    std = backbone.blocks[0][0]
    np.testing.assert_allclose(std.mean.numpy(), X.mean(0), rtol=1e-4)
    np.testing.assert_allclose(std.std.numpy(), X.std(0, ddof=1), rtol=1e-3)


def test_damaged_cache_entry_is_retrained(tmp_path):
    source = _digit_source(5)
    spec = ModelSpec("cnn", "images", (1, 8, 8), {"width": 4})
    _, note = pretrain_source(source, spec, seed=0, epochs=1, cache_dir=tmp_path)
    cached = next(tmp_path.glob("*.pt"))
    cached.write_bytes(b"broken")
    _, note = pretrain_source(source, spec, seed=0, epochs=1, cache_dir=tmp_path)
    assert note.startswith("pretrained here")
    _, note = pretrain_source(source, spec, seed=0, epochs=1, cache_dir=tmp_path)
    assert note.startswith("loaded from cache")
