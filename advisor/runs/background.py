"""Background runs for the dashboard: ``advisor recommend --json`` in a child process.

The dashboard never trains in its own process. ``start_run`` launches the CLI with a run
directory; the page then polls ``run_status`` (the process) and ``trial_progress`` (the run's
Optuna storage) and reads ``report.json`` when it appears. ``cancel_run`` terminates the
process. Files the dashboard adds to a run directory: ``ui-process.json`` (pid, command),
``ui-stdout.json`` (the JSON report printed by the CLI), ``ui-log.txt`` (stderr) and
``ui-exit.json`` (exit code, once known).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.runs.storage import CONFIG_NAME, JOURNAL_NAME, pid_alive

PROCESS_FILE = "ui-process.json"
STDOUT_FILE = "ui-stdout.json"
LOG_FILE = "ui-log.txt"
EXIT_FILE = "ui-exit.json"
EXPORT_NAME = "model.pt"

# Child processes started by this server process, by run directory (polled to reap them).
_PROCS: dict[str, subprocess.Popen[bytes]] = {}


@dataclass
class RunSpec:
    """What to run: the inputs (a scenario or paths) and the search budget."""

    demo: str | None = None
    source: str | None = None
    target: str | None = None
    target_unlabeled: str | None = None
    label_column: str = "label"
    model: str | None = None
    trials: int = 1
    strategies: list[str] = field(default_factory=list)
    export: bool = False
    seed: int = 0
    extra: list[str] = field(default_factory=list)


@dataclass
class RunStatus:
    """The state of a run directory's background process."""

    state: str  # "running" | "finished" | "failed" | "cancelled" | "idle"
    returncode: int | None
    error: str  # one line; empty unless failed


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def new_run_dir(runs_dir: Path, spec: RunSpec) -> Path:
    """A fresh directory under ``runs_dir`` named after the data and the time."""
    base = spec.demo or Path(spec.target or "target").stem
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    d = Path(runs_dir) / f"ui-{_slug(base)}-{stamp}"
    n = 1
    while d.exists():
        n += 1
        d = Path(runs_dir) / f"ui-{_slug(base)}-{stamp}-{n}"
    return d


def build_command(spec: RunSpec, run_dir: Path) -> list[str]:
    """The ``advisor recommend`` command line for ``spec`` writing into ``run_dir``."""
    cmd = [sys.executable, "-m", "advisor", "recommend"]
    if spec.demo:
        cmd += ["--demo", spec.demo]
    for flag, value in (("--source", spec.source), ("--target", spec.target),
                        ("--target-unlabeled", spec.target_unlabeled), ("--model", spec.model)):
        if value:
            cmd += [flag, value]
    if spec.label_column != "label":
        cmd += ["--label-column", spec.label_column]
    if spec.strategies:
        cmd += ["--strategies", ",".join(spec.strategies)]
    cmd += ["--trials", str(int(spec.trials)), "--seed", str(int(spec.seed)), "--run-dir", str(run_dir), "--json"]
    if spec.export:
        cmd += ["--export", str(run_dir / EXPORT_NAME)]
    return cmd + list(spec.extra)


def launch(cmd: list[str], run_dir: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in the background, its output in ``run_dir``; never waits for it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in (EXIT_FILE, STDOUT_FILE):
        (run_dir / name).unlink(missing_ok=True)
    out = (run_dir / STDOUT_FILE).open("wb")
    err = (run_dir / LOG_FILE).open("wb")
    try:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
    finally:
        out.close()
        err.close()
    (run_dir / PROCESS_FILE).write_text(json.dumps({"pid": proc.pid, "command": cmd, "started": time.time()}))
    _PROCS[str(run_dir.resolve())] = proc
    return proc


def start_run(runs_dir: Path, spec: RunSpec) -> Path:
    """Create a run directory under ``runs_dir`` and start ``advisor recommend`` in it."""
    run_dir = new_run_dir(Path(runs_dir), spec)
    launch(build_command(spec, run_dir), run_dir)
    return run_dir


def export_command(run_dir: Path) -> list[str]:
    """Rerun a finished run from its config.json with ``--export`` (no new trials: the budget is spent)."""
    from advisor.runs.storage import read_json

    config = read_json(run_dir / CONFIG_NAME)
    req, opts = config.get("request", {}), config.get("options", {})
    spec = RunSpec(demo=req.get("demo"), source=req.get("source"), target=req.get("target"),
                   target_unlabeled=req.get("target_unlabeled"), label_column=req.get("label_column", "label"),
                   model=req.get("model"), seed=int(req.get("seed", 0)), export=True)
    cmd = build_command(spec, run_dir)
    cmd.remove("--trials")
    cmd.remove(str(spec.trials))  # the recorded budget applies
    for flag, key in (("--score", "score"), ("--max-epochs", "max_epochs"), ("--run", "run_name"),
                      ("--strategies", "strategies")):
        value = opts.get(key)
        if value not in (None, "", []):
            cmd += [flag, ",".join(value) if isinstance(value, list) else str(value)]
    for flag, key in (("--val-fraction", "val_fraction"), ("--test-fraction", "test_fraction"),
                      ("--image-size", "image_size")):
        if req.get(key) is not None:
            cmd += [flag, str(req[key])]
    return cmd


def _last_error(run_dir: Path) -> str:
    """The last error line the CLI wrote to stderr (one line)."""
    log = run_dir / LOG_FILE
    if not log.exists():
        return ""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("advisor:"):
            return line
    return lines[-1] if lines else ""


def run_status(run_dir: Path) -> RunStatus:
    """Whether the run's process is running, and how it ended."""
    run_dir = Path(run_dir)
    exit_file = run_dir / EXIT_FILE
    proc = _PROCS.get(str(run_dir.resolve()))
    if proc is not None and not exit_file.exists():
        rc = proc.poll()
        if rc is None:
            return RunStatus("running", None, "")
        exit_file.write_text(json.dumps({"returncode": rc, "cancelled": False}))
    if exit_file.exists():
        info = json.loads(exit_file.read_text())
        rc = info.get("returncode")
        if info.get("cancelled"):
            return RunStatus("cancelled", rc, "")
        if rc == 0:
            return RunStatus("finished", 0, "")
        return RunStatus("failed", rc, _last_error(run_dir) or f"the run exited with code {rc}")
    pfile = run_dir / PROCESS_FILE
    if pfile.exists():
        pid = int(json.loads(pfile.read_text())["pid"])
        if pid_alive(pid):
            return RunStatus("running", None, "")
        if (run_dir / "report.json").exists() and (run_dir / STDOUT_FILE).exists() \
                and (run_dir / STDOUT_FILE).stat().st_size > 0:
            return RunStatus("finished", None, "")
        return RunStatus("failed", None, _last_error(run_dir) or "the run's process is gone")
    return RunStatus("idle", None, "")


def cancel_run(run_dir: Path, wait_s: float = 10.0) -> bool:
    """Terminate the run's process (SIGTERM, then SIGKILL); True when one was running."""
    run_dir = Path(run_dir)
    if run_status(run_dir).state != "running":
        return False
    proc = _PROCS.get(str(run_dir.resolve()))
    pid = proc.pid if proc is not None else int(json.loads((run_dir / PROCESS_FILE).read_text())["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.time() + wait_s
    rc: int | None = None
    while time.time() < deadline:
        if proc is not None:
            rc = proc.poll()
            if rc is not None:
                break
        elif not pid_alive(pid):
            break
        time.sleep(0.1)
    else:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if proc is not None:
            rc = proc.wait(5)
    (run_dir / EXIT_FILE).write_text(json.dumps({"returncode": rc, "cancelled": True}))
    return True


def run_name(run_dir: Path) -> str | None:
    """The run name recorded in config.json (None before the run has written it)."""
    config = Path(run_dir) / CONFIG_NAME
    if not config.exists():
        return None
    try:
        return json.loads(config.read_text()).get("run")
    except json.JSONDecodeError:
        return None


def storage_of(run_dir: Path) -> str:
    """The run's Optuna storage: its config's storage unless masked, else the journal file."""
    config = Path(run_dir) / CONFIG_NAME
    if config.exists():
        stored = json.loads(config.read_text()).get("storage", "")
        if stored and "***" not in stored:
            return stored
    return str(Path(run_dir) / JOURNAL_NAME)


def trial_progress(run_dir: Path) -> list[dict[str, Any]]:
    """Per strategy: finished, running, failed trials and the budget, read from the run's storage."""
    from optuna.trial import TrialState

    name = run_name(run_dir)
    storage_path = storage_of(run_dir)
    if name is None or ("://" not in storage_path and not Path(storage_path).exists()):
        return []
    from advisor.runs.storage import open_storage

    storage = open_storage(storage_path, heartbeat=False)
    rows = []
    for study_id_summary in storage.get_all_studies():
        study_name = study_id_summary.study_name
        if not study_name.startswith(f"{name}:"):
            continue
        sid = storage.get_study_id_from_name(study_name)
        trials = storage.get_all_trials(sid, deepcopy=False)
        count = {s: sum(t.state == s for t in trials) for s in TrialState}
        values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        rows.append({
            "strategy": study_name[len(name) + 1:],
            "finished": count[TrialState.COMPLETE] + count[TrialState.PRUNED],
            "pruned": count[TrialState.PRUNED],
            "running": count[TrialState.RUNNING],
            "failed": count[TrialState.FAIL],
            "budget": int(storage.get_study_user_attrs(sid).get("budget", 0)),
            "best": max(values) if values else None,
        })
    return sorted(rows, key=lambda r: r["strategy"])


def load_study(run_dir: Path, strategy: str) -> Any:
    """The Optuna study of ``strategy`` in the run (for optuna.visualization)."""
    import optuna

    from advisor.runs.storage import open_storage
    from advisor.search.study import study_name

    name = run_name(run_dir)
    if name is None:
        raise ValueError(f"{run_dir} has no config.json yet")
    storage = open_storage(storage_of(run_dir), heartbeat=False)
    return optuna.load_study(study_name=study_name(name, strategy), storage=storage)


def exported_model(run_dir: Path) -> Path | None:
    """The exported weights file in the run directory, when there is one."""
    p = Path(run_dir) / EXPORT_NAME
    return p if p.exists() and p.stat().st_size > 0 else None


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Run directories under ``runs_dir`` (those with config.json), newest first, with a summary."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    rows = []
    for d in root.iterdir():
        if not (d / CONFIG_NAME).exists():
            continue
        report = d / "report.json"
        rec, complete = None, None
        if report.exists():
            try:
                doc = json.loads(report.read_text())
                rec = (doc.get("recommendation") or {}).get("strategy")
                complete = doc.get("complete")
            except json.JSONDecodeError:
                pass
        rows.append({
            "run": d.name, "dir": str(d), "modified": _dt.datetime.fromtimestamp(d.stat().st_mtime),
            "process": run_status(d).state, "has_report": report.exists(), "complete": complete,
            "recommended": rec, "exported": exported_model(d) is not None,
        })
    return sorted(rows, key=lambda r: r["modified"], reverse=True)
