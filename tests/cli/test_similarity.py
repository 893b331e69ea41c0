"""``advisor similarity`` end to end, in a subprocess, on feature tables written to a temp dir."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from advisor_plugins.metrics.logme import logme

from advisor.data.domain import Domain, split_target


def _write(path: Path, n: int, shift: float, seed: int) -> Domain:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), n // 3)
    x = (rng.normal(size=(n, 6)) + y[:, None] + shift).astype(np.float32)
    np.savez(path, X=x, y=y, classes=np.array(["a", "b", "c"]))
    return Domain(path.stem, x, y, ("a", "b", "c"), "features")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "advisor", "similarity", *args],
                          capture_output=True, text=True, timeout=300)


def test_model_none_json_uses_stored_features(tmp_path: Path) -> None:
    _write(tmp_path / "s.npz", 90, 0.0, 0)
    target = _write(tmp_path / "t.npz", 90, 2.0, 1)
    proc = _run("--source", str(tmp_path / "s.npz"), "--target", str(tmp_path / "t.npz"),
                "--model", "none", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # stdout is only the JSON document
    assert set(doc["not_applicable"]) == {"leep", "nce", "source_accuracy"}
    assert {"mmd", "pad", "coral", "label_shift", "logme", "hscore", "knn"} <= set(doc["metrics"])
    assert doc["metrics"]["mmd"]["p_value"] < 0.01
    assert doc["metrics"]["mmd"]["direction"] == "lower_is_better"
    # the metrics read the stored train+val rows as they are (the same seeded split)
    splits = split_target(target, seed=0)
    rows = np.concatenate([splits.train.X, splits.val.X]).astype(np.float64)
    labels = np.concatenate([splits.train.y, splits.val.y])
    assert doc["target_rows"] == len(rows)
    assert doc["metrics"]["logme"]["value"] == pytest.approx(logme(rows, labels).value, rel=1e-6)


@pytest.mark.slow
def test_table_output_lists_interpretations(tmp_path: Path) -> None:
    _write(tmp_path / "s.npz", 60, 0.0, 2)
    _write(tmp_path / "t.npz", 60, 0.0, 3)
    proc = _run("--source", str(tmp_path / "s.npz"), "--target", str(tmp_path / "t.npz"), "--model", "none")
    assert proc.returncode == 0, proc.stderr
    assert "logme" in proc.stdout and "interpretation" in proc.stdout
    assert "not applicable: leep" in proc.stdout


def test_missing_target_is_a_one_line_usage_error() -> None:
    proc = _run("--model", "none")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--target" in proc.stderr


@pytest.mark.slow
def test_demo_json_has_source_predictions() -> None:
    proc = _run("--demo", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert {"leep", "nce", "logme", "knn"} <= set(doc["metrics"])
    assert not doc["errors"]
