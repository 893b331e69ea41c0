"""Commands added through the ``transfer_advisor.commands`` entry points: ``advisor ui`` beside the CLI."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def fake_command_dist(root: Path, name: str, value: str, module: str, source: str) -> None:
    """A ``*.dist-info`` on PYTHONPATH declaring one command, found by importlib.metadata like an install."""
    (root / f"{module}.py").write_text(source)
    info = root / "advisor_cmds-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: advisor-cmds\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[transfer_advisor.commands]\n{name} = {value}\n")


def run(args: list[str], site: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"PYTHONPATH": str(site)} if site else {})}
    return subprocess.run([sys.executable, "-m", "advisor", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_help_lists_ui_without_importing_it_heavily() -> None:
    out = run(["--help"])
    assert out.returncode == 0, out.stderr
    assert "ui " in out.stdout and "Start the Streamlit dashboard" in out.stdout
    probe = subprocess.run([sys.executable, "-c", "import sys\nfrom advisor.cli import main\ntry:\n main(['--help'])\n"
                            "except SystemExit:\n pass\nprint(sorted(m for m in ('torch', 'streamlit', 'optuna') "
                            "if m in sys.modules))"], capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip().splitlines()[-1] == "[]", probe.stderr
    assert run(["ui", "--help"]).returncode == 0


def test_added_command_runs_and_a_broken_one_is_one_line(tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    ok.mkdir()
    fake_command_dist(ok, "hello", "advisor_hello:hello", "advisor_hello",
                      "import click\n@click.command()\ndef hello():\n    '''Say hello.'''\n    click.echo('hello')\n")
    out = run(["hello"], ok)
    assert out.returncode == 0 and out.stdout == "hello\n", out.stderr
    assert "Say hello." in run(["--help"], ok).stdout

    broken = tmp_path / "broken"
    broken.mkdir()
    fake_command_dist(broken, "frob", "advisor_frob:frob", "advisor_frob", "raise ImportError('needs frobnicate')\n")
    out = run(["frob"], broken)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "advisor: error: command 'frob' (advisor_frob:frob, from advisor-cmds) failed to load: "
        "ImportError: needs frobnicate"]
    listing = run(["--help"], broken)
    assert listing.returncode == 0 and "frob" in listing.stdout and "unavailable" in listing.stdout


def _imports(root: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
        found[str(path.relative_to(REPO))] = names
    return found


def test_the_core_never_imports_the_dashboard_and_the_dashboard_not_the_cli() -> None:
    core = {f: [n for n in names if n.split(".")[0] == "advisor_ui"] for f, names in _imports(REPO / "advisor").items()}
    assert {f: n for f, n in core.items() if n} == {}
    ui = {f: [n for n in names if n.startswith("advisor.cli")] for f, names in _imports(REPO / "ui").items()}
    assert {f: n for f, n in ui.items() if n} == {}
