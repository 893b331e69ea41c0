"""The meta-store in a PostgreSQL run database: a run on it appends there, and ``advice fit --storage`` reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from advisor.models.inputs import InputRequest
from advisor.pipeline import RecommendOptions, recommend
from advisor.plugin.registry import build_registry
from advisor.runs.metastore import RdbMetaStore

pytestmark = [pytest.mark.postgres, pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]


def _with_password(url: str) -> str:
    """``url`` with a password (the throwaway cluster trusts every login, so it connects all the same)."""
    return url.replace("postgresql://postgres@", "postgresql://postgres:pw-s3cret@")


def test_a_postgres_run_appends_to_its_database_and_fit_reads_it(postgres_url, tmp_path) -> None:
    url = _with_password(postgres_url)
    opts = RecommendOptions(strategies="l2sp", trials=1, max_epochs=1, n_seeds=1, storage=url, run_name="pg-meta",
                            run_dir=str(tmp_path / "run"), threads=1)
    doc = recommend(InputRequest(demo="digits-shift"), opts, build_registry(third_party=False))
    recs = RdbMetaStore(postgres_url).records()
    assert [r["id"] for r in recs] == [doc["run"]["meta_record"]] and recs[0]["fingerprint"] == doc["run"][
        "fingerprint"]
    assert doc["run"]["meta_store"] == postgres_url.replace("postgres@", "postgres:***@")
    assert "pw-s3cret" not in (tmp_path / "run" / "report.json").read_text()

    # Two more records with other strategies' outcomes, so that a ranker has something to learn.
    store = RdbMetaStore(url)
    for i, q in enumerate((0.2, 0.8)):
        store.append({"id": f"extra{i}", "evidence": {"quality": q},
                      "domains": {"source": {"name": "s"}, "target": {"name": f"t{i}"}},
                      "strategies": {"a": {"val_score": q}, "b": {"val_score": 1 - q}}})
    env = {**os.environ, "TRANSFER_ADVISOR_NO_PLUGINS": "1"}
    res = subprocess.run([sys.executable, "-m", "advisor", "advice", "fit", "--storage", url, "--json",
                          "--out", str(tmp_path / "model.json")], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["records"] == 3 and "pw-s3cret" not in res.stdout and "postgres:***@" in out["source"]
