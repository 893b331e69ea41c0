"""resolve_inputs: request checks, validation before any model work, model rules, scenarios."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from advisor.data.domain import Domain, split_target
from advisor.errors import InputError
from advisor.models.inputs import ARCH_NAMES, TORCHVISION_NAMES, InputRequest, load_data, resolve_inputs
from advisor.plugin.contracts import ScenarioData
from advisor.plugin.registry import Registry


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def _npz(path: Path, n: int = 40, d: int = 4, classes: int = 2, seed: int = 0, shift: float = 0.0) -> str:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    X = rng.normal(size=(n, d)) + y[:, None] * 2.0 + shift
    np.savez(path, X=X, y=np.array([f"c{v}" for v in y]))
    return str(path)


def _fail(req: InputRequest, match: str, registry=None) -> str:
    with pytest.raises(InputError, match=match) as info:
        resolve_inputs(req, registry)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_names_match_models():
    from advisor.models.architectures import SOURCE_ARCHS, TORCHVISION_ARCHS

    assert ARCH_NAMES == SOURCE_ARCHS and TORCHVISION_NAMES == TORCHVISION_ARCHS


def test_request_checks(tmp_path):
    t = _npz(tmp_path / "t.npz")
    _fail(InputRequest(), r"give --target PATH .* or --demo")
    _fail(InputRequest(demo="x", target=t), "either --demo or --target, not both")
    _fail(InputRequest(demo="x", source=t), "--source cannot be combined with --demo")
    _fail(InputRequest(target=t), r"give --source PATH .* and/or --model")
    _fail(InputRequest(target=t, source=t, weights="w.pth"), "--weights needs --model ARCH")
    _fail(InputRequest(target=t, model="cnn", weights="w.pth"), "--weights is for torchvision")


def test_unknown_architecture_lists_known(tmp_path):
    msg = _fail(InputRequest(target=_npz(tmp_path / "t.npz"), model="resnet1000"),
                "unknown architecture 'resnet1000'")
    assert all(a in msg for a in ARCH_NAMES)


def test_missing_model_file(tmp_path):
    _fail(InputRequest(target=_npz(tmp_path / "t.npz"), model=str(tmp_path / "m.pt")),
          r"model file not found: .*m\.pt")


def test_missing_hub_weights_fail_before_loading_data(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    # the target path does not even exist: the model argument is checked first
    _fail(InputRequest(target=str(tmp_path / "nope"), model="resnet18"),
          r"no pretrained weights for resnet18 on disk: put resnet18-f37072fd\.pth in .*hub/checkpoints")


def test_tables_pretrain_mlp_and_describe(tmp_path):
    req = InputRequest(source=_npz(tmp_path / "s.npz", n=60, seed=1), target=_npz(tmp_path / "t.npz"))
    r = resolve_inputs(req)
    assert r.pretrained and r.backbone is not None and r.backbone.spec.arch == "mlp"
    assert r.backbone.source_classes == ("c0", "c1")
    assert r.model_note.startswith("mlp pretrained here on source (60 rows, 40 epochs)")
    assert r.splits.describe() == {"train": 20, "val": 8, "test": 12}
    assert set(r.fingerprints()) == {"source", "target_train", "target_val", "target_test", "model"}
    lines = r.describe()
    assert lines[0].startswith("source: 60 rows, 2 classes, input 4 from")
    assert lines[1] == "target: 40 rows, 2 classes, input 4; split train 20 / val 8 / test 12"
    assert lines[-1].startswith("model: mlp, 2 blocks, 128 features; mlp pretrained here")
    again = resolve_inputs(req)
    assert again.model_note.startswith("mlp loaded from cache")
    assert again.fingerprints() == r.fingerprints()
    other = resolve_inputs(InputRequest(source=req.source, target=req.target, seed=1))
    assert other.fingerprints()["target_train"] != r.fingerprints()["target_train"]


def test_feature_dimensions_differ(tmp_path):
    req = InputRequest(source=_npz(tmp_path / "s.npz", d=5), target=_npz(tmp_path / "t.npz", d=4))
    _fail(req, "feature dimensions differ: source has 5 features, target has 4")


def test_single_class_target(tmp_path):
    p = tmp_path / "one.npz"
    np.savez(p, X=np.zeros((10, 3)), y=np.array(["only"] * 10))
    _fail(InputRequest(target=str(p), model="mlp"), r"target has a single class \('only'\)")


def test_class_too_small_to_split(tmp_path):
    p = tmp_path / "t.npz"
    np.savez(p, X=np.zeros((23, 3)), y=np.array(["big"] * 20 + ["tiny"] * 3))
    _fail(InputRequest(target=str(p), model="mlp"), r"class 'tiny' of target has 3 samples")


def test_everything_is_validated_before_pretraining(tmp_path, make_digits_folder, monkeypatch):
    import advisor.models.sources

    def no_training(*args, **kwargs):
        raise AssertionError("pretraining started before the inputs were validated")

    monkeypatch.setattr(advisor.models.sources, "pretrain_source", no_training)
    source = make_digits_folder(tmp_path / "s", per_class=6)
    target = make_digits_folder(tmp_path / "t", per_class=6, offset=6)
    (target / "digit2" / "bad.png").write_bytes(b"not a png")
    _fail(InputRequest(source=str(source), target=str(target)), r"cannot read image .*digit2/bad\.png")
    (target / "digit2" / "bad.png").unlink()
    unl = tmp_path / "u"
    unl.mkdir()
    (unl / "x.jpg").write_bytes(b"garbage")
    _fail(InputRequest(source=str(source), target=str(target), target_unlabeled=str(unl)),
          r"cannot read image .*u/x\.jpg")


def test_images_with_cnn_source_and_unlabelled_target(tmp_path, make_digits_folder):
    source = make_digits_folder(tmp_path / "s", per_class=8)
    target = make_digits_folder(tmp_path / "t", per_class=8, offset=8, rgb=True)
    unl = make_digits_folder(tmp_path / "u", per_class=3, offset=20)
    r = resolve_inputs(InputRequest(source=str(source), target=str(target), target_unlabeled=str(unl),
                                    model="cnn", image_size=12))
    assert r.source.X.shape[1:] == (3, 12, 12)  # grey source repeated to match the RGB target
    assert r.splits.train.X.shape[1:] == (3, 12, 12)
    assert r.target_unlabeled.y is None and r.target_unlabeled.classes == r.splits.train.classes
    assert r.pretrained and r.backbone.spec.input_shape == (3, 12, 12)
    assert "cnn pretrained here on source (24 images" in r.model_note
    assert "target_unlabeled" in r.fingerprints()


def test_default_image_model_is_small_input_resnet18(tmp_path, make_digits_folder):
    data = load_data(InputRequest(source=str(make_digits_folder(tmp_path / "s", per_class=6)),
                                  target=str(make_digits_folder(tmp_path / "t", per_class=6))))
    assert data.model.kind == "arch" and data.model.arch == "resnet18" and not data.model.explicit
    assert data.splits.train.X.shape[2:] == (32, 32)
    from advisor.models.inputs import default_spec

    spec = default_spec(data.model.arch, data.splits.train)
    assert spec.input_shape == (3, 32, 32) and spec.options == {"small_input": True}


def test_target_only_gives_a_random_backbone_or_none(tmp_path):
    t = _npz(tmp_path / "t.npz")
    r = resolve_inputs(InputRequest(target=t, model="mlp"))
    assert not r.pretrained and r.backbone is not None and r.backbone.source_classes == ()
    assert r.model_note.startswith("random mlp")
    none = resolve_inputs(InputRequest(target=t, model="none"))
    assert none.backbone is None and not none.pretrained and none.fingerprints()["model"] == "none"
    _fail(InputRequest(target=t, model="cnn"), "model cnn takes images but the target holds features")


def test_checkpoint_model(tmp_path, make_digits_folder):
    from advisor.models.architectures import build
    from advisor.models.backbone import ModelSpec
    from advisor.models.sources import save_checkpoint

    mlp = build(ModelSpec("mlp", "features", (4,)), 3, seed=0)
    mlp.source_classes = ("p", "q", "r")
    ckpt = save_checkpoint(mlp, tmp_path / "mlp.pt")
    r = resolve_inputs(InputRequest(target=_npz(tmp_path / "t.npz"), model=str(ckpt)))
    assert r.pretrained and r.backbone.source_classes == ("p", "q", "r")
    assert r.model_note == f"checkpoint {ckpt}"
    _fail(InputRequest(target=_npz(tmp_path / "t5.npz", d=5), model=str(ckpt)),
          r"feature dimensions differ: the model .*mlp\.pt takes 4 features, the target has 5")

    cnn = build(ModelSpec("cnn", "images", (1, 12, 12), {"width": 4}), 2, seed=0)
    cnn.source_classes = ("a", "b")
    ckpt = save_checkpoint(cnn, tmp_path / "cnn.pt")
    target = make_digits_folder(tmp_path / "t", per_class=7)
    r = resolve_inputs(InputRequest(target=str(target), model=str(ckpt)))
    assert r.splits.train.X.shape[1:] == (1, 12, 12)  # loaded at the checkpoint's input size
    rgb = make_digits_folder(tmp_path / "rgb", per_class=7, rgb=True)
    _fail(InputRequest(target=str(rgb), model=str(ckpt)), "3-channel images but 1 channels are needed")


class _Scenario:
    name = "tiny"
    description = "a tiny scenario"
    expected = "transfer helps"

    def build(self, seed: int = 0) -> ScenarioData:
        rng = np.random.default_rng(seed)
        y = np.arange(60) % 2
        X = (rng.random((60, 1, 8, 8)) * 0.5 + y[:, None, None, None] * 0.5).astype(np.float32)
        target = Domain("target", X, y, ("a", "b"), "images")
        source = Domain("source", X[::-1].copy(), y[::-1].copy(), ("a", "b"), "images")
        return ScenarioData(source, split_target(target, seed=seed), model="cnn", expected=self.expected)


def test_demo_scenario_keeps_its_splits_and_model(tmp_path, monkeypatch):
    registry = Registry(scenarios={"tiny": _Scenario()})
    built = _Scenario().build(0)
    data = load_data(InputRequest(demo="tiny"), registry)
    assert data.scenario == "tiny" and data.expected == "transfer helps"
    assert data.model.arch == "cnn"
    np.testing.assert_array_equal(data.splits.test.X, built.target.test.X)
    r = resolve_inputs(InputRequest(demo="tiny", model="none"), registry)
    assert r.backbone is None and r.describe()[0] == "scenario: tiny (expected: transfer helps)"
    msg = _fail(InputRequest(demo="nope"), "unknown scenario 'nope'; known scenario names: tiny", registry)
    assert "tiny" in msg


# --------------------------------------------------------------------------- torchvision weights: size, normalisation


def _resnet18_file(path: Path) -> Path:
    """A randomly initialised torchvision resnet18 state dict saved at ``path`` (stands for ImageNet weights)."""
    import torchvision

    torch.manual_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def test_torchvision_named_weights_take_their_entry_input(tmp_path, make_digits_folder):
    imgs = make_digits_folder(tmp_path / "imgs", classes=(0, 1), per_class=6, rgb=True)
    weights = _resnet18_file(tmp_path / "w" / "resnet18-f37072fd.pth")
    inputs = resolve_inputs(InputRequest(target=str(imgs), model="resnet18", weights=str(weights)))
    assert inputs.splits.train.input_shape == (3, 224, 224) and inputs.splits.train.X.dtype == np.uint8
    assert "ResNet18_Weights.IMAGENET1K_V1: resize 256, centre crop 224 px" in inputs.model_note
    assert inputs.backbone.spec.options["preprocess"]["resize"] == 256
    from advisor.models.inputs import input_description

    desc = input_description(inputs.backbone, inputs.splits.train)
    assert desc["size"] == [224, 224] and desc["resize"] == 256
    assert desc["mean"] == [0.485, 0.456, 0.406] and desc["std"] == [0.229, 0.224, 0.225]
    assert any(line.startswith("input: 224x224 px (shorter side resized to 256, centre crop")
               and "mean (0.485, 0.456, 0.406)" in line for line in inputs.describe())


def test_other_weights_file_takes_the_default_entry_with_a_note_and_image_size_overrides(tmp_path,
                                                                                        make_digits_folder):
    imgs = make_digits_folder(tmp_path / "imgs", classes=(0, 1), per_class=6, rgb=True)
    weights = _resnet18_file(tmp_path / "my-finetuned.pth")
    data = load_data(InputRequest(target=str(imgs), model="resnet18", weights=str(weights)))
    assert data.splits.train.input_shape == (3, 224, 224)
    assert data.model.preprocess_note.startswith("my-finetuned.pth is not named like a torchvision weights file: "
                                                 "input size and normalisation of resnet18's DEFAULT entry")
    data = load_data(InputRequest(target=str(imgs), model="resnet18", weights=str(weights), image_size=48))
    assert data.splits.train.input_shape == (3, 48, 48) and data.model.preprocess["resize"] is None
    assert "--image-size 48 overrides the size" in data.model.preprocess_note


def test_weights_name_resolves_through_the_hub_cache(tmp_path, monkeypatch, make_digits_folder):
    from advisor.errors import AdvisorFailure

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("TRANSFER_ADVISOR_OFFLINE", "1")
    imgs = make_digits_folder(tmp_path / "imgs", classes=(0, 1), per_class=6)
    req = InputRequest(target=str(imgs), model="resnet18", weights="IMAGENET1K_V1")
    with pytest.raises(AdvisorFailure) as info:  # exit 1: valid input, the file cannot be had
        load_data(req)
    msg = str(info.value)
    assert "\n" not in msg and "resnet18-f37072fd.pth" in msg and str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    _resnet18_file(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    for name in ("IMAGENET1K_V1", "DEFAULT"):
        data = load_data(InputRequest(target=str(imgs), model="resnet18", weights=name))
        assert data.model.weights_path.name == "resnet18-f37072fd.pth"
        assert "ResNet18_Weights.IMAGENET1K_V1" in data.model.preprocess_note
    _fail(InputRequest(target=str(imgs), model="resnet18", weights="IMAGENET9K_V7"),
          r"IMAGENET9K_V7 is not a torchvision weights name of resnet18 \(DEFAULT, IMAGENET1K_V1\) nor a file")


def test_download_without_network_is_one_line(tmp_path):
    from advisor.errors import AdvisorFailure
    from advisor.models.sources import download_weights

    target = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    with pytest.raises(AdvisorFailure, match=r"cannot download http://127\.0\.0\.1:9/resnet18-f37072fd\.pth .*"
                                             r"no network\?\): put resnet18-f37072fd\.pth in") as info:
        download_weights("http://127.0.0.1:9/resnet18-f37072fd.pth", target)  # nothing listens on port 9
    assert "\n" not in str(info.value) and not target.exists()


def test_cli_weights_name_offline_exits_1(tmp_path, make_digits_folder):
    import os
    import subprocess
    import sys

    imgs = make_digits_folder(tmp_path / "imgs", classes=(0, 1), per_class=6)
    env = {**os.environ, "TORCH_HOME": str(tmp_path / "empty"), "TRANSFER_ADVISOR_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "advisor", "recommend", "--target", str(imgs), "--model",
                          "resnet18", "--weights", "DEFAULT", "--run-dir", str(tmp_path / "runs")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1, out.stderr
    lines = [ln for ln in out.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "resnet18-f37072fd.pth" in lines[0] and "forbids downloads" in lines[0]
