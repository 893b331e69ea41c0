"""The export's integrity check covers its metadata: edits of model.json are refused, input shapes bounded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from advisor.errors import InputError
from advisor.report.export import export_model, load_export


@pytest.fixture
def export(tmp_path: Path) -> Path:
    from advisor.models.architectures import build
    from advisor.models.backbone import ModelSpec

    model = build(ModelSpec("cnn", "images", (1, 16, 16), {}), 3, seed=0)
    return export_model(model, tmp_path / "m.pt", {"classes": ["cat", "dog", "eel"], "strategy": "finetune"})


def _edit(weights: Path, change) -> None:
    meta_path = weights.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    change(meta)
    meta_path.write_text(json.dumps(meta, indent=1))


def test_an_untouched_export_loads_and_predicts(export):
    loaded = load_export(export)
    assert loaded.classes == ["cat", "dog", "eel"]
    proba = loaded.predict_proba(np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32))
    assert proba.shape == (2, 3) and np.allclose(proba.sum(1), 1, atol=1e-5)
    _edit(export, lambda m: m.update(verdict="edited notes do not matter", created="yesterday"))
    assert load_export(export).meta["verdict"] == "edited notes do not matter"


def test_reversed_classes_are_refused(export):
    _edit(export, lambda m: m.update(classes=m["classes"][::-1]))
    with pytest.raises(InputError, match="classes, input shape, normalisation or architecture were edited"):
        load_export(export)


def test_a_changed_input_shape_or_option_is_refused(export):
    _edit(export, lambda m: m["spec"].update(input_shape=[1, 32, 32]))
    with pytest.raises(InputError, match="were edited after export"):
        load_export(export)


@pytest.mark.parametrize("shape", [[1, 100000, 100000], [1, 16], [2, 16, 16], [0, 16, 16], [1, 16.5, 16]])
def test_an_input_shape_out_of_bounds_is_refused_before_building(export, shape):
    _edit(export, lambda m: m["spec"].update(input_shape=shape))
    with pytest.raises(InputError, match="input_shape .* (out of bounds|positive whole numbers)"):
        load_export(export)


def test_weights_without_the_metadata_digest_are_refused(export):
    import hashlib

    import torch

    state = torch.load(export, weights_only=True)
    state.pop("_advisor.metadata_sha256")
    torch.save(state, export)
    _edit(export, lambda m: m.update(weights_sha256=hashlib.sha256(export.read_bytes()).hexdigest()))
    with pytest.raises(InputError, match="were edited after export"):
        load_export(export)
