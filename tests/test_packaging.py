"""The built wheel: installs and imports in a fresh venv, with no stray top-level packages."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                    "-w", str(out), "-q"], check=True, capture_output=True, timeout=600)
    (whl,) = out.glob("transfer_advisor-*.whl")
    return whl


def test_wheel_top_level_packages(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"advisor", "advisor_plugins", "advisor_ui"}
    assert "advisor_ui/app.py" in names and "advisor_plugins/strategies/l2sp.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[transfer_advisor]" in text and "advisor = advisor.cli:main" in text


def test_wheel_installs_and_runs_in_a_venv(wheel: Path, tmp_path: Path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    code = ("import advisor, advisor_plugins, advisor_ui, advisor.cli; "
            "print(advisor.__file__, advisor_plugins.__file__)")
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert str(env_dir) in out.stdout and str(REPO) not in out.stdout  # the wheel's copy, not the checkout
    out = subprocess.run([str(env_dir / "bin" / "advisor"), "plugins", "--json"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    scenarios = {s["name"] for p in doc["plugins"] for s in p["scenarios"]}
    assert scenarios >= {"digits-shift", "digits-conflict", "digits-distant"}
    assert {p["name"] for p in doc["plugins"] if p["source"] == "builtin"} >= {"builtin_metrics",
                                                                                 "builtin_strategies"}
