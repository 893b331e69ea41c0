"""Issue 6: export after a demo run, predict it back, reopen the report, refuse tampering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def advisor(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "advisor", *args], capture_output=True, text=True, cwd=cwd,
                         timeout=600, env={**os.environ, "TRANSFER_ADVISOR_NO_PLUGINS": "1"})
    if check:
        assert out.returncode == 0, out.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One small demo run with --export (module-scoped: several tests read it)."""
    root = tmp_path_factory.mktemp("export")
    run_dir = root / "run"
    out = advisor("recommend", "--demo", "--strategies", "finetune", "--trials", "1", "--max-epochs", "6",
                  "--threads", "1", "--run-dir", str(run_dir), "--json", "--export", str(root / "model.pt"))
    doc = json.loads(out.stdout)
    from advisor.plugin.registry import build_registry

    data = build_registry(third_party=False).scenario("digits-shift").build(0)
    test = data.target.test
    np.savez(root / "test.npz", X=test.X[:, 0], y=test.y, classes=np.array(test.classes))
    return root, run_dir, doc


def test_predict_gives_the_reported_test_score_exactly(exported):
    root, _, doc = exported
    assert (root / "model.pt").exists() and (root / "model.json").exists() and (root / "model.md").exists()
    meta = json.loads((root / "model.json").read_text())
    rec = doc["recommendation"]
    assert meta["strategy"] == rec["strategy"] and meta["classes"] == [str(i) for i in range(10)]
    assert meta["spec"]["arch"] == "cnn" and meta["blocks"] == 3
    out = advisor("predict", str(root / "model.pt"), str(root / "test.npz"), "--json", "--top-k", "3")
    pred = json.loads(out.stdout)
    assert pred["score"] == pytest.approx(rec["test_accuracy"], abs=1e-4)
    assert len(pred["predictions"]) == rec["test_size"]
    assert len(pred["predictions"][0]["top"]) == 3
    probs = [t["probability"] for t in pred["predictions"][0]["top"]]
    assert probs == sorted(probs, reverse=True)
    card = (root / "model.md").read_text()
    assert rec["verdict_code"] in card and "Model card" in card


def test_python_api_loads_and_predicts(exported):
    root, _, doc = exported
    from advisor.report.export import load_export

    model = load_export(root / "model.pt")
    data = np.load(root / "test.npz")
    proba = model.predict_proba(data["X"][:, None].astype(np.float32))
    acc = float(np.mean(proba.argmax(1) == data["y"]))
    assert acc == pytest.approx(doc["recommendation"]["test_accuracy"], abs=1e-4)


def test_report_reprints_the_run_without_training(exported):
    _, run_dir, doc = exported
    journal = run_dir / "optuna.journal"
    before = journal.read_bytes()
    out = advisor("report", str(run_dir), "--json")
    again = json.loads(out.stdout)
    assert again["recommendation"] == doc["recommendation"]
    assert [r["strategy"] for r in again["strategies"]] == [r["strategy"] for r in doc["strategies"]]
    assert journal.read_bytes() == before  # no new trials
    text = advisor("report", str(run_dir)).stdout
    assert doc["recommendation"]["strategy"] in text and "Recommendation" in text


@pytest.mark.parametrize("damage", ["flip", "truncate", "arch", "classes", "reversed", "huge_shape", "no_meta"])
def test_tampered_export_is_refused(exported, tmp_path, damage):
    root, _, _ = exported
    for suffix in (".pt", ".json", ".md"):
        (tmp_path / f"m{suffix}").write_bytes((root / f"model{suffix}").read_bytes())
    weights, meta_path = tmp_path / "m.pt", tmp_path / "m.json"
    meta = json.loads(meta_path.read_text())
    if damage == "flip":
        raw = bytearray(weights.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        weights.write_bytes(bytes(raw))
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "arch":
        meta["spec"]["arch"] = "mlp"
        meta["spec"]["input_kind"] = "features"
        meta["spec"]["input_shape"] = [256]
        meta_path.write_text(json.dumps(meta))
    elif damage == "classes":
        meta["classes"] = meta["classes"][:-1]
        meta_path.write_text(json.dumps(meta))
    elif damage == "reversed":  # same count, swapped labels: only the digest inside the weights sees it
        meta["classes"] = meta["classes"][::-1]
        meta_path.write_text(json.dumps(meta))
    elif damage == "huge_shape":
        meta["spec"]["input_shape"] = [1, 100000, 100000]
        meta_path.write_text(json.dumps(meta))
    else:
        meta_path.unlink()
    out = advisor("predict", str(weights), str(root / "test.npz"), check=False)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr and lines[0].startswith("advisor: error:")


def test_wrong_input_kind_and_not_a_run(exported, tmp_path):
    root, _, _ = exported
    np.savez(tmp_path / "table.npz", X=np.zeros((5, 7), np.float32), y=np.arange(5) % 2)
    out = advisor("predict", str(root / "model.pt"), str(tmp_path / "table.npz"), check=False)
    assert out.returncode == 2 and "model takes images" in out.stderr
    out = advisor("report", str(tmp_path), check=False)
    assert out.returncode == 2 and "not a run directory" in out.stderr


def test_report_exports_a_finished_run_identically(exported, tmp_path):
    root, run_dir, doc = exported
    journal = run_dir / "optuna.journal"
    before = journal.read_bytes()
    out = advisor("report", str(run_dir), "--export", str(tmp_path / "again.pt"), "--threads", "1", "--json")
    again = json.loads(out.stdout)
    assert again["recommendation"]["strategy"] == doc["recommendation"]["strategy"]
    assert journal.read_bytes() == before  # no new trials
    import torch

    a = torch.load(root / "model.pt", weights_only=True)
    b = torch.load(tmp_path / "again.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # same seeds, same model


def test_export_states_the_weights_input_and_predict_applies_it(tmp_path):
    """A torchvision model: export metadata and card say 256 -> 224 px and ImageNet mean/std; predict resizes so."""
    import torch
    import torchvision
    from PIL import Image
    from torchvision import transforms

    from advisor.models.sources import torchvision_backbone, weights_preprocess
    from advisor.report.export import export_model
    from advisor.report.predict import predict_path

    torch.manual_seed(0)
    weights = tmp_path / "resnet18-f37072fd.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), weights)
    prep, _ = weights_preprocess("resnet18", weights)
    model = torchvision_backbone("resnet18", (3, 224, 224), weights, preprocess=prep).with_new_head(2, seed=0)
    export_model(model, tmp_path / "m.pt", {"classes": ["a", "b"]})
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["input_shape"] == [3, 224, 224]
    assert meta["input"] == {"kind": "images", "shape": [3, 224, 224], "size": [224, 224], "resize": 256,
                             "interpolation": "bilinear", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    card = (tmp_path / "m.md").read_text()
    assert "224x224 px images (shorter side resized to 256 then centre-cropped" in card
    assert "mean (0.485, 0.456, 0.406)" in card
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (260, 300, 3), dtype=np.uint8), "RGB").save(photo)
    got = predict_path(tmp_path / "m.pt", photo, top_k=2)["predictions"][0]["top"]
    ref = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
    with Image.open(photo) as im:
        x = ref(im.convert("RGB"))[None]
    model.eval()
    with torch.no_grad():
        want = torch.softmax(model(x), 1)[0]
    by_class = {t["class"]: t["probability"] for t in got}
    assert by_class["a"] == pytest.approx(float(want[0]), abs=1e-4)
