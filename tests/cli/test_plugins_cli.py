"""``advisor plugins`` with real third-party distributions found through entry points.

Each fake distribution is a ``*.dist-info`` folder with ``entry_points.txt`` on PYTHONPATH,
which ``importlib.metadata`` discovers exactly like an installed package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def fake_dist(root: Path, dist: str, module: str, source: str) -> None:
    (root / f"{module}.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[transfer_advisor]\n{module} = {module}\n")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    fake_dist(tmp_path, "advisor-empty", "advisor_empty", "# registers nothing\n")
    fake_dist(tmp_path, "advisor-broken", "advisor_broken", "raise ImportError('missing dependency frobnicate')\n")
    example = REPO / "examples" / "advisor-example-plugin" / "src"
    (tmp_path / "advisor_example_plugin").symlink_to(example / "advisor_example_plugin")
    info = tmp_path / "advisor_example_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: advisor-example-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[transfer_advisor]\nexample = advisor_example_plugin\n")
    return tmp_path


def run(args: list[str], site: Path, **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, "PYTHONPATH": str(site), **env}
    e.pop("TRANSFER_ADVISOR_NO_PLUGINS", None) if "TRANSFER_ADVISOR_NO_PLUGINS" not in env else None
    return subprocess.run([sys.executable, "-m", "advisor", *args], capture_output=True, text=True, env=e,
                          timeout=120)


def test_lists_third_party_and_failures(site: Path):
    out = run(["plugins", "--json"], site)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    plugins = {p["name"]: p for p in doc["plugins"]}
    assert plugins["advisor_empty"]["source"] == "entry point"
    assert plugins["advisor_empty"]["version"] == "1.2.3"
    assert plugins["example"]["metrics"] == [{"name": "centroid_gap", "kind": "similarity"}]
    assert plugins["example"]["strategies"] == [{"name": "head_only", "family": "model"}]
    assert {s["name"] for p in doc["plugins"] for s in p["scenarios"]} >= {
        "digits-shift", "digits-conflict", "digits-distant"}
    failures = {f["plugin"]: f for f in doc["failures"]}
    assert failures["advisor_broken"]["stage"] == "import"
    assert "missing dependency frobnicate" in failures["advisor_broken"]["error"]


def test_strict_makes_a_broken_plugin_fatal(site: Path):
    for args in (["plugins", "--strict"], ["--strict", "plugins", "--json"]):
        out = run(args, site)
        assert out.returncode != 0
        assert "advisor_broken" in out.stderr and "frobnicate" in out.stderr
        assert "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def test_environment_variable_disables_third_party(site: Path):
    out = run(["plugins", "--json"], site, TRANSFER_ADVISOR_NO_PLUGINS="1")
    doc = json.loads(out.stdout)
    assert {p["source"] for p in doc["plugins"]} == {"builtin"}
    assert doc["failures"] == []


def test_help_is_quick_and_lists_commands():
    out = subprocess.run([sys.executable, "-m", "advisor", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "recommend" in out.stdout and "plugins" in out.stdout
    # the CLI's first import must not load torch
    probe = subprocess.run([sys.executable, "-c", "import sys, advisor.cli, advisor.plugin.registry as r; "
                            "r.build_registry(); print('torch' in sys.modules)"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "False", probe.stderr
