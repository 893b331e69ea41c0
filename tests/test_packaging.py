"""The built wheel, as a newcomer gets it: built from the committed tree, installed into a fresh venv.

The venv sees the dependencies through one plain path line in a ``.pth`` file, so no editable
finder of this checkout (which CI installs into the same interpreter) can hide a module the wheel
lacks: ``.pth`` files inside a directory added that way are never processed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"advisor": "advisor", "plugins": "advisor_plugins", "ui": "advisor_ui"}
pytestmark = pytest.mark.slow


def _source_modules() -> tuple[list[str], list[str]]:
    """Every module of the source tree under its installed name: (importable, scripts).

    Scripts (``__main__``, the Streamlit app and its pages) run the program when imported, so
    they are only compiled.
    """
    names, scripts = [], []
    for folder, name in ROOTS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [name, *rel.parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            is_script = parts[-1] in {"__main__", "app"} or parts[:2] == ["advisor_ui", "views"]
            (scripts if is_script else names).append(".".join(parts))
    return names, scripts


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from ``git archive HEAD``: what a fresh clone has, never a stale build/ folder."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the committed tree cannot be archived")
    work = tmp_path_factory.mktemp("wheel")
    archive = work / "src.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", "-o", str(archive), "HEAD"], check=True)
    src = work / "src"
    with tarfile.open(archive) as tar:
        tar.extractall(src, filter="data")
    out = work / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation",
                    "-w", str(out), "-q"], check=True, capture_output=True, timeout=600)
    (whl,) = out.glob("transfer_advisor-*.whl")
    return whl


@pytest.fixture(scope="module")
def fresh_venv(wheel: Path, tmp_path_factory) -> Path:
    """A venv with only the wheel installed; the dependencies come in through a plain .pth path line."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(site, "deps.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, timeout=600)
    return env_dir


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH"}}
    env["TRANSFER_ADVISOR_NO_PLUGINS"] = "1"  # third-party plugins of this machine stay out
    return env


def test_wheel_top_level_packages(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"advisor", "advisor_plugins", "advisor_ui"}
    assert "advisor_ui/app.py" in names and "advisor/cli/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[transfer_advisor]" in text and "advisor = advisor.cli:main" in text


def test_wheel_holds_every_source_module(wheel: Path):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = []
    for folder, name in ROOTS.items():
        for path in (REPO / folder).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            rel = path.relative_to(REPO / folder).as_posix()
            if f"{name}/{rel}" not in names:
                missing.append(f"{name}/{rel}")
    assert not missing, f"the wheel lacks {missing}"


def test_wheel_imports_every_module_from_the_venv(fresh_venv: Path, tmp_path: Path):
    py = fresh_venv / "bin" / "python"
    modules, scripts = _source_modules()
    code = ("import importlib, importlib.util, advisor\n"
            "print(advisor.__file__)\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            f"for name in {scripts!r}:\n"
            "    spec = importlib.util.find_spec(name)\n"
            "    compile(spec.loader.get_source(name), spec.origin, 'exec')\n")
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env=_env())
    assert out.returncode == 0, out.stderr[-3000:]
    first = out.stdout.splitlines()[0]
    assert first.startswith(str(fresh_venv)), first  # the wheel's copy, not the checkout


def test_wheel_cli_runs_from_the_venv(fresh_venv: Path, tmp_path: Path):
    exe = fresh_venv / "bin" / "advisor"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                         env=_env())
    assert out.returncode == 0, out.stderr
    assert "recommend" in out.stdout and "ui" in out.stdout
    out = subprocess.run([str(fresh_venv / "bin" / "python"), "-m", "advisor", "--help"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120, env=_env())
    assert out.returncode == 0, out.stderr
    out = subprocess.run([str(exe), "plugins", "--json"], capture_output=True, text=True, cwd=tmp_path,
                         timeout=120, env=_env())
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    scenarios = {s["name"] for p in doc["plugins"] for s in p["scenarios"]}
    assert scenarios >= {"digits-shift", "digits-conflict", "digits-distant"}
    builtin = {p["name"] for p in doc["plugins"] if p["source"] == "builtin"}
    assert builtin >= {"builtin_metrics", "builtin_strategies"}
