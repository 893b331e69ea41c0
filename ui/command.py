"""``advisor ui``: the Streamlit dashboard (``streamlit run`` on the installed ``advisor_ui/app.py``).

The dashboard's own command and settings. The CLI finds it through the entry point
``ui = "advisor_ui.command:ui"`` of the group ``transfer_advisor.commands`` (pyproject.toml), so the
core never imports the dashboard. This module imports neither streamlit nor torch: ``advisor --help``
reads its summary.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

RUNS_ENV = "ADVISOR_UI_RUNS"  # the runs directory, read by advisor_ui.common.runs_dir
STORAGE_ENV = "ADVISOR_UI_STORAGE"  # an Optuna storage whose runs the Runs page lists too (kept in memory only)
UPLOAD_LIMIT_MB = 200  # streamlit's --server.maxUploadSize and save_upload's limit


def app_path() -> Path:
    """The dashboard's entry script, wherever ``advisor_ui`` is installed."""
    return Path(__file__).parent / "app.py"


def streamlit_command(port: int) -> list[str]:
    """``streamlit run`` headless on ``port``, without telemetry or file watching."""
    return [sys.executable, "-m", "streamlit", "run", str(app_path()),
            "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--server.maxUploadSize", str(UPLOAD_LIMIT_MB), "--global.developmentMode", "false",
            "--client.toolbarMode", "minimal"]


@click.command("ui")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True, help="Port to listen on.")
@click.option("--runs", "runs", default="advisor-runs", show_default=True, metavar="DIR",
              help="Runs directory (created when missing).")
@click.option("--storage", default=None, metavar="URL|JOURNAL_FILE",
              help="Also list and open the runs of this Optuna storage (e.g. postgresql://...); the password "
                   "may come from PGPASSWORD or ~/.pgpass.")
def ui(port: int, runs: str, storage: str | None) -> None:
    """Start the Streamlit dashboard on http://127.0.0.1:PORT."""
    from advisor.errors import InputError
    from advisor.runs.location import mask_url

    runs_dir = Path(runs).expanduser().resolve()
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create runs directory {runs_dir}: {exc.strerror}") from exc
    env = {**os.environ, RUNS_ENV: str(runs_dir)}
    if storage:
        env[STORAGE_ENV] = storage  # the environment of the server only: never a file or a command line
    cmd = streamlit_command(port)
    shown = f", storage {mask_url(storage)}" if storage else ""
    click.echo(f"Transfer Advisor dashboard: http://127.0.0.1:{port}  (runs in {runs_dir}{shown})", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execve(sys.executable, cmd, env)  # the server replaces this process: one pid to stop
    sys.exit(subprocess.call(cmd, env=env))
