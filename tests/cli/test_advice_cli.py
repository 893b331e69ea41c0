"""``advisor advice fit`` and ``advisor advice evaluate`` from the command line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from advisor.advice.learned import load_file
from advisor.runs.metastore import FolderMetaStore


def _records() -> list[dict]:
    """18 records over 6 target domains where the evidence 'quality' decides between two strategies."""
    rng = np.random.default_rng(0)
    out = []
    for d in range(6):
        for k in range(3):
            q = float(rng.uniform(0, 1))
            out.append({"id": f"r{d}-{k}", "evidence": {"quality": q},
                        "domains": {"source": {"name": f"src{k}"}, "target": {"name": f"dom{d}"}},
                        "prior_ranking": ["alone", "transfer", "middle"],
                        "strategies": {"transfer": {"val_score": 0.5 + 0.4 * q, "test_score": 0.5 + 0.4 * q},
                                       "alone": {"val_score": 0.9 - 0.4 * q, "test_score": 0.9 - 0.4 * q},
                                       "middle": {"val_score": 0.7, "test_score": 0.7}}})
    return out


def _advisor(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("advisor")
    cmd = [exe] if exe else [sys.executable, "-c", "from advisor.cli import main; main()"]
    full_env = {**os.environ, "TRANSFER_ADVISOR_NO_PLUGINS": "1", "COLUMNS": "200", **env}
    return subprocess.run([*cmd, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=120)


def test_fit_on_a_meta_store_writes_the_model_the_advice_uses(tmp_path) -> None:
    store = FolderMetaStore(tmp_path / "store")
    for r in _records():
        store.append(r)
    user_model = tmp_path / "advice-model.json"
    res = _advisor(["advice", "fit", "--meta-store", str(store.folder), "--json"], tmp_path,
                   TRANSFER_ADVISOR_ADVICE_MODEL=str(user_model))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["model"] == str(user_model) and out["used_by_advice"] is True
    assert out["records"] == 18 and out["strategies"] == ["alone", "middle", "transfer"]
    model, records = load_file(user_model)
    assert model.predict({"quality": 0.9})["transfer"] > model.predict({"quality": 0.9})["alone"]
    assert [r["id"] for r in records] == [r["id"] for r in store.records()]


def test_evaluate_shipped_records_json(tmp_path) -> None:
    res = _advisor(["advice", "evaluate", "--json"], tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    s = doc["summary"]
    assert s["records"] >= 20 and s["scored"] == s["records"]
    for key in ("advice_tau_lodo", "advice_top_regret_lodo_points", "prior_tau", "oracle_val_tau"):
        assert isinstance(s[key], float)
    assert all(r["records_used"] < s["records"] for r in doc["scenarios"])


def test_evaluate_records_file_in_words(tmp_path) -> None:
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    res = _advisor(["advice", "evaluate", "--records", str(path)], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "leave-one-dataset-out over 18 of 18 records" in res.stdout
    assert "hand-set prior on the same records" in res.stdout


def test_bad_input_is_one_line_exit_2(tmp_path) -> None:
    empty = _advisor(["advice", "fit", "--meta-store", str(tmp_path / "nothing"),
                      "--out", str(tmp_path / "m.json")], tmp_path)
    assert empty.returncode == 2 and "nothing to learn from" in empty.stderr
    assert len(empty.stderr.strip().splitlines()) == 1
    missing = _advisor(["advice", "evaluate", "--records", str(tmp_path / "absent.json")], tmp_path)
    assert missing.returncode == 2 and "absent.json" in missing.stderr
    both = _advisor(["advice", "fit", "--meta-store", "x", "--runs", str(tmp_path)], tmp_path)
    assert both.returncode == 2


def test_fit_on_the_meta_store_table_of_a_run_database(tmp_path) -> None:
    from advisor.runs.metastore import RdbMetaStore

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    store = RdbMetaStore(url)
    for r in _records():
        store.append(r)
    for flag in ("--storage", "--meta-store"):
        out_file = tmp_path / f"model{flag}.json"
        res = _advisor(["advice", "fit", flag, url, "--out", str(out_file), "--json"], tmp_path)
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout)
        assert out["records"] == 18 and out["source"] == f"meta-store {url}" and out["used_by_advice"] is False
        model, records = load_file(out_file)
        assert model.predict({"quality": 0.1})["alone"] > model.predict({"quality": 0.1})["transfer"]
        assert [r["id"] for r in records] == [r["id"] for r in store.records()]


def test_fit_storage_errors_are_one_line_exit_2(tmp_path) -> None:
    out = ["--out", str(tmp_path / "m.json")]
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    (tmp_path / "empty.db").touch()  # an SQLite database without the table: no records
    cases = {
        "no records": (["--storage", url], "no records"),
        "missing database": (["--storage", f"sqlite:///{tmp_path / 'absent.db'}"], "no such database file"),
        "unreachable": (["--storage", "postgresql://ann:pw-s3cret@127.0.0.1:1/db?connect_timeout=1"],
                        "cannot read meta-store postgresql://ann:***@127.0.0.1:1/db"),
        "journal path": (["--storage", str(tmp_path / "optuna.journal")], "not a database URL"),
        "with --meta-store": (["--storage", url, "--meta-store", str(tmp_path)], "not --meta-store and --storage"),
        "with --runs": (["--storage", url, "--runs", str(tmp_path)], "not --storage and --runs"),
    }
    for name, (args, message) in cases.items():
        res = _advisor(["advice", "fit", *args, *out], tmp_path)
        assert res.returncode == 2 and message in res.stderr, (name, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1 and "pw-s3cret" not in res.stderr, (name, res.stderr)
    assert not (tmp_path / "absent.db").exists() and not (tmp_path / "m.json").exists()
