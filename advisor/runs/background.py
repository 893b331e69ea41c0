"""Background runs for the dashboard: a serialised request run in a child process.

The dashboard never trains in its own process. ``start_run`` writes the request -- the same
``InputRequest`` and ``RecommendOptions`` the Python API takes -- as ``request.json`` into a new run
directory and starts ``python -m advisor.runs.background RUN_DIR``, which runs ``recommend`` (and the
export, when asked) exactly like ``advisor recommend --json``. The page then polls ``run_status`` (the
process) and ``trial_progress`` (the run's Optuna storage) and reads ``report.json`` when it appears.
``cancel_run`` terminates the process. Files the dashboard adds to a run directory: ``request.json``,
``ui-process.json`` (pid, command), ``ui-stdout.json`` (the JSON report), ``ui-log.txt`` (stderr)
and ``ui-exit.json`` (exit code, once known). No secret is written: a storage URL's password is masked
and comes from the environment (``PGPASSWORD``, ``~/.pgpass``) in the child.
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
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.runs.location import CONFIG_NAME, RunLocation, mask_url
from advisor.runs.storage import pid_alive

if TYPE_CHECKING:
    from advisor.models.inputs import InputRequest
    from advisor.pipeline import RecommendOptions

REQUEST_FILE = "request.json"
PROCESS_FILE = "ui-process.json"
STDOUT_FILE = "ui-stdout.json"
LOG_FILE = "ui-log.txt"
EXIT_FILE = "ui-exit.json"
EXPORT_NAME = "model.pt"

# Child processes started by this server process, by run directory (polled to reap them).
_PROCS: dict[str, subprocess.Popen[bytes]] = {}


@dataclass
class RunStatus:
    """The state of a run directory's background process."""

    state: str  # "running" | "finished" | "failed" | "cancelled" | "idle"
    returncode: int | None
    error: str  # one line; empty unless failed


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def new_run_dir(runs_dir: Path, request: InputRequest) -> Path:
    """A fresh directory under ``runs_dir`` named after the data and the time."""
    base = request.demo or Path(request.target or "target").stem
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    d = Path(runs_dir) / f"ui-{_slug(base)}-{stamp}"
    n = 1
    while d.exists():
        n += 1
        d = Path(runs_dir) / f"ui-{_slug(base)}-{stamp}-{n}"
    return d


def write_request(run_dir: Path, request: InputRequest, options: RecommendOptions) -> Path:
    """``request.json``: the request and options as the Python API takes them (storage secrets masked)."""
    from advisor.runs.files import atomic_write_text

    opts = asdict(options)
    if opts.get("storage"):
        opts["storage"] = mask_url(opts["storage"])
    path = Path(run_dir) / REQUEST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"request": asdict(request), "options": opts}, indent=2) + "\n")
    return path


def _known(cls: type, doc: Any) -> dict[str, Any]:
    """The entries of ``doc`` that are fields of dataclass ``cls`` (a file from another version may have more)."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in (doc or {}).items() if k in names}


def read_request(run_dir: Path) -> tuple[InputRequest, RecommendOptions]:
    """The request and options written by ``write_request``."""
    from advisor.errors import InputError
    from advisor.models.inputs import InputRequest
    from advisor.pipeline import RecommendOptions
    from advisor.runs.storage import read_json

    path = Path(run_dir) / REQUEST_FILE
    doc = read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("request"), dict):
        raise InputError(f"{path} holds no request")
    return InputRequest(**_known(InputRequest, doc["request"])), RecommendOptions(**_known(RecommendOptions,
                                                                                          doc.get("options")))


def background_command(run_dir: Path) -> list[str]:
    """The command that runs a run directory's ``request.json``."""
    return [sys.executable, "-m", "advisor.runs.background", str(run_dir)]


def start_run(runs_dir: Path, request: InputRequest, options: RecommendOptions, export: bool = False) -> Path:
    """Create a run directory under ``runs_dir``, write the request there and run it in the background.

    ``export`` saves the recommended model as ``model.pt`` in the run directory."""
    run_dir = new_run_dir(Path(runs_dir), request)
    options = replace(options, run_dir=str(run_dir), export=str(run_dir / EXPORT_NAME) if export else None)
    write_request(run_dir, request, options)
    launch(background_command(run_dir), run_dir)
    return run_dir


def start_export(run_dir: Path) -> subprocess.Popen[bytes]:
    """Rerun a finished run from its config.json with an export (no new trials: the recorded budgets apply)."""
    from advisor.models.inputs import InputRequest
    from advisor.pipeline import RecommendOptions
    from advisor.runs.storage import read_json

    run_dir = Path(run_dir)
    config = read_json(run_dir / CONFIG_NAME)
    request = InputRequest(**_known(InputRequest, config.get("request")))
    options = replace(RecommendOptions(**_known(RecommendOptions, config.get("options"))), trials=None, timeout=None,
                      run_dir=str(run_dir), run_name=config.get("run"), export=str(run_dir / EXPORT_NAME))
    write_request(run_dir, request, options)
    return launch(background_command(run_dir), run_dir)


def run_request(run_dir: Path) -> dict[str, Any]:
    """Run a run directory's ``request.json``: ``recommend``, then the export when asked; the public report."""
    from advisor.pipeline import recommend
    from advisor.report.render import public

    request, options = read_request(run_dir)
    doc = recommend(request, options)
    if options.export and doc.get("recommendation"):
        from advisor.report.export import export_recommendation

        doc["export"] = str(export_recommendation(doc, options.export))
    return public(doc)


def main(argv: list[str] | None = None) -> None:
    """``python -m advisor.runs.background RUN_DIR``: the JSON report on stdout, errors in one line."""
    from advisor.cli import describe_error

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m advisor.runs.background RUN_DIR\n")
        sys.exit(2)

    def interrupt(signum: int, frame: object) -> None:  # SIGTERM (cancel) unwinds like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        doc = run_request(Path(args[0]))
    except KeyboardInterrupt:
        sys.stderr.write("advisor: interrupted\n")
        sys.exit(130)
    except Exception as exc:  # one line and the CLI's exit codes
        line, code = describe_error(exc)
        sys.stderr.write(line + "\n")
        sys.exit(code)
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


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


def location_of(run_dir: Path) -> RunLocation | None:
    """The run's location from its config.json (None before the run has written it)."""
    if not (Path(run_dir) / CONFIG_NAME).exists():
        return None
    return RunLocation.from_dir(run_dir)


def trial_progress(run_dir: Path) -> list[dict[str, Any]]:
    """Per strategy: finished, running, failed trials and the budget, read from the run's storage."""
    from optuna.trial import TrialState

    location = location_of(run_dir)
    if location is None or (not location.is_rdb and not Path(location.storage).exists()):
        return []
    name = location.run
    storage = location.optuna_storage(heartbeat=False)
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

    from advisor.search.study import study_name

    location = location_of(run_dir)
    if location is None:
        raise ValueError(f"{run_dir} has no config.json yet")
    return optuna.load_study(study_name=study_name(location.run, strategy),
                             storage=location.optuna_storage(heartbeat=False))


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


if __name__ == "__main__":
    main()
