"""Background runs for the dashboard, and the state of any run read from its files and storage.

The dashboard never trains in its own process. ``start_run`` writes the request -- the same
``InputRequest`` and ``RecommendOptions`` the Python API takes -- as ``request.json`` into a new run
directory and starts ``python -m advisor.runs.background RUN_DIR`` in its own process group, which runs
``recommend`` (and the export, when asked) exactly like ``advisor recommend --json`` and records each
phase in ``ui-progress.json``. One run directory runs one dashboard process at a time: ``ui-lock`` is
created atomically (``O_EXCL``) and names the live process, so a second start is refused (``RunActive``).
``cancel_run`` stops every process group the dashboard started for the run.

Files the dashboard adds to a run directory: ``request.json``, ``ui-lock``, ``ui-process.json`` (every
process started there: pid, command, start time), ``ui-progress.json`` (phase, counts, times),
``ui-stdout.json`` (the JSON report), ``ui-log.txt`` (stderr) and ``ui-exit.json`` (exit code, once known).
No secret is written: a storage URL's password is masked and comes from the environment in the child.

Runs started elsewhere (``advisor recommend --run-dir``, workers) have none of these files: their state
comes from their storage (trials, their workers' pids), the processes on this machine that name the run
directory, and ``report.json`` (``run_status``, ``run_progress``, ``list_runs``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.errors import InputError
from advisor.runs.location import CONFIG_NAME, RunLocation, mask_url
from advisor.runs.storage import pid_alive

if TYPE_CHECKING:
    from advisor.models.inputs import InputRequest
    from advisor.pipeline import RecommendOptions

REQUEST_FILE = "request.json"
LOCK_FILE = "ui-lock"
PROCESS_FILE = "ui-process.json"
PROGRESS_FILE = "ui-progress.json"
STDOUT_FILE = "ui-stdout.json"
LOG_FILE = "ui-log.txt"
EXIT_FILE = "ui-exit.json"
EXPORT_NAME = "model.pt"
REPORT_NAME = "report.json"
#: The storage URL of a ``--storage-report`` child (from the environment, so no password is on a command line).
STORAGE_ENV = "ADVISOR_BACKGROUND_STORAGE"
#: A lock younger than this whose process is not yet recorded is a start in progress.
LOCK_GRACE_S = 30.0

# Child processes started by this server process, by run directory (polled to reap them).
_PROCS: dict[str, subprocess.Popen[bytes]] = {}


class RunActive(InputError):
    """A dashboard process already works in this run directory."""


@dataclass
class RunStatus:
    """The state of a run: from the dashboard's process when it started one, otherwise from the storage."""

    state: str  # "running" | "finished" | "failed" | "cancelled" | "idle"
    returncode: int | None
    error: str  # one line; empty unless failed


@dataclass
class Progress:
    """Where a run is: its phase, counts, elapsed time, an estimate of the rest and the log's last lines."""

    state: str
    phase: str  # "starting" | "quick advice" | "trials" | "seed repeats" | "test retrains" | "done" | "stopped"
    trials_done: int = 0
    trials_total: int = 0
    repeats_done: int = 0
    repeats_total: int = 0
    elapsed_s: float | None = None
    remaining_s: float | None = None
    fraction: float = 0.0  # 1.0 only once report.json exists and is complete
    log_tail: list[str] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)  # trial_progress

    @property
    def label(self) -> str:
        """The phase in words, with its counts."""
        if self.phase == "trials":
            return f"Trials {self.trials_done}/{self.trials_total}"
        if self.phase == "seed repeats":
            return f"Seed repeats {self.repeats_done}/{self.repeats_total}"
        if self.phase == "test retrains":
            return "Test retrains (the pick and the reference on train+validation, scored once on test)"
        if self.phase == "seed repeats or test retrains":
            return "Seed repeats and test retrains"
        return self.phase.capitalize()


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


def _read(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or half written."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_request(run_dir: Path) -> tuple[InputRequest, RecommendOptions]:
    """The request and options written by ``write_request``."""
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


def start_run(runs_dir: Path, request: InputRequest, options: RecommendOptions, export: bool = False,
              run_dir: Path | None = None) -> Path:
    """Write the request into a run directory under ``runs_dir`` and run it in the background.

    ``run_dir`` names the directory (the page picks it once, so a second click targets the same one and
    is refused with ``RunActive``); a fresh one is made when None. ``export`` saves the recommended model
    as ``model.pt`` in the run directory."""
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(Path(runs_dir), request)
    run_dir.mkdir(parents=True, exist_ok=True)
    _acquire_lock(run_dir)
    try:
        options = replace(options, run_dir=str(run_dir), export=str(run_dir / EXPORT_NAME) if export else None)
        write_request(run_dir, request, options)
        launch(background_command(run_dir), run_dir, locked=True)
    except BaseException:
        (run_dir / LOCK_FILE).unlink(missing_ok=True)
        raise
    return run_dir


def _rerun(run_dir: Path, export: bool) -> subprocess.Popen[bytes]:
    """Rerun a run from its config.json with its recorded budgets (no new trials beyond them)."""
    from advisor.models.inputs import InputRequest
    from advisor.pipeline import RecommendOptions
    from advisor.runs.storage import read_json

    run_dir = Path(run_dir)
    config = read_json(run_dir / CONFIG_NAME)
    request = InputRequest(**_known(InputRequest, config.get("request")))
    options = replace(RecommendOptions(**_known(RecommendOptions, config.get("options"))), trials=None, timeout=None,
                      run_dir=str(run_dir), run_name=config.get("run"),
                      export=str(run_dir / EXPORT_NAME) if export else None)
    _acquire_lock(run_dir)
    try:
        write_request(run_dir, request, options)
        return launch(background_command(run_dir), run_dir, locked=True)
    except BaseException:
        (run_dir / LOCK_FILE).unlink(missing_ok=True)
        raise


def start_export(run_dir: Path) -> subprocess.Popen[bytes]:
    """Rerun a finished run from its config.json with an export (no new trials: the recorded budgets apply)."""
    return _rerun(run_dir, export=True)


def resume_run(run_dir: Path) -> subprocess.Popen[bytes]:
    """Go on with a stopped run (cancelled, timed out, crashed) up to its recorded budgets, in the background."""
    return _rerun(run_dir, export=False)


def start_storage_report(runs_dir: Path, storage: str, run: str) -> Path:
    """Compute the report of ``run`` in an RDB/journal ``storage`` into ``runs_dir/<run>`` in the background
    (``advisor report --storage URL --run NAME``: seed repeats and the test verdict, no search trial). The URL,
    password included, reaches the child through its environment, never its command line or a file."""
    run_dir = Path(runs_dir) / _slug(run)
    run_dir.mkdir(parents=True, exist_ok=True)
    _acquire_lock(run_dir)
    try:
        cmd = [sys.executable, "-m", "advisor.runs.background", "--storage-report", str(run_dir), run]
        launch(cmd, run_dir, locked=True, env={**os.environ, STORAGE_ENV: storage})
    except BaseException:
        (run_dir / LOCK_FILE).unlink(missing_ok=True)
        raise
    return run_dir


class ProgressWriter:
    """The child's ``on_event``: each phase into ``ui-progress.json`` and a line into the log (stderr)."""

    def __init__(self, run_dir: Path, n_seeds: int) -> None:
        self.path = Path(run_dir) / PROGRESS_FILE
        self.doc: dict[str, Any] = {"phase": "quick advice", "started": time.time(), "n_seeds": n_seeds,
                                    "trials_done": 0, "trials_total": 0, "repeats_done": 0, "repeats_total": 0,
                                    "updated": time.time()}
        self._write()

    def _write(self) -> None:
        from advisor.runs.files import atomic_write_text

        self.doc["updated"] = time.time()
        atomic_write_text(self.path, json.dumps(self.doc))

    def __call__(self, kind: str, payload: dict[str, Any]) -> None:
        d, line = self.doc, ""
        if kind == "run":
            line = f"run {payload.get('run')} in {payload.get('dir')}"
        elif kind == "advice":
            line = "quick advice ready"
        elif kind == "search_start":
            d.update(phase="trials", trials_total=int(payload["total"]), trials_done=int(payload["done"]),
                     search_started=time.time())
            line = f"search: {d['trials_done']} of {d['trials_total']} trials already finished"
        elif kind == "trial":
            if payload.get("state") in ("COMPLETE", "PRUNED"):
                d["trials_done"] = min(d["trials_total"], d["trials_done"] + 1)
            value = "-" if payload.get("value") is None else f"{payload['value']:.3f}"
            line = f"trial {payload['strategy']} #{payload['number']}: {payload['state'].lower()} {value}"
        elif kind == "search_end":
            d.update(phase="seed repeats", repeats_total=len(trial_progress_names(self.path.parent)),
                     repeats_started=time.time())
            line = "search done" if payload.get("complete") else "search stopped before every budget was spent"
        elif kind == "repeat":
            d.update(phase="seed repeats", repeats_done=d["repeats_done"] + 1)
            line = f"seed repeats of {payload['strategy']}'s best setting"
        elif kind == "crossval":
            line = f"cross-validating {payload['strategy']} on train+val ({payload['folds']} folds)"
        elif kind == "final":
            d.update(phase="test retrains", retrains_started=time.time())
            from advisor.report.render import retrain_line

            line = retrain_line(payload)
        else:
            return
        self._write()
        if line:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def done(self) -> None:
        self.doc["phase"] = "done"
        self._write()


def trial_progress_names(run_dir: Path) -> list[str]:
    """The strategies with a study in the run (names only; empty when the storage cannot be read)."""
    try:
        return [r["strategy"] for r in trial_progress(run_dir)]
    except Exception:  # noqa: BLE001 - a count for the progress line only
        return []


def run_request(run_dir: Path) -> dict[str, Any]:
    """Run a run directory's ``request.json``: ``recommend``, then the export when asked; the public report."""
    from advisor.pipeline import recommend
    from advisor.report.render import public

    request, options = read_request(run_dir)
    writer = ProgressWriter(Path(run_dir), options.n_seeds)
    doc = recommend(request, options, on_event=writer)
    if options.export and doc.get("recommendation"):
        from advisor.report.export import export_recommendation

        doc["export"] = str(export_recommendation(doc, options.export))
    writer.done()
    return public(doc)


def storage_report(run_dir: Path, run: str) -> dict[str, Any]:
    """The report of ``run`` from the storage in ``$ADVISOR_BACKGROUND_STORAGE``, written into ``run_dir``."""
    from advisor.report.render import public
    from advisor.runs.reopen import report_from_storage

    storage = os.environ.get(STORAGE_ENV)
    if not storage:
        raise InputError(f"no storage: set {STORAGE_ENV}")
    writer = ProgressWriter(Path(run_dir), 0)
    writer.doc["phase"] = "seed repeats"
    doc = report_from_storage(storage, run, run_dir=str(run_dir), on_event=writer)
    writer.done()
    return public(doc)


def main(argv: list[str] | None = None) -> None:
    """``python -m advisor.runs.background RUN_DIR`` (or ``--storage-report RUN_DIR NAME``): the JSON report
    on stdout, errors in one line."""
    from advisor.cli import describe_error

    args = list(sys.argv[1:] if argv is None else argv)
    if not (len(args) == 1 or (len(args) == 3 and args[0] == "--storage-report")):
        sys.stderr.write("usage: python -m advisor.runs.background RUN_DIR | --storage-report RUN_DIR NAME\n")
        sys.exit(2)

    def interrupt(signum: int, frame: object) -> None:  # SIGTERM (cancel) unwinds like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        doc = storage_report(Path(args[1]), args[2]) if len(args) == 3 else run_request(Path(args[0]))
    except KeyboardInterrupt:
        sys.stderr.write("advisor: interrupted\n")
        sys.exit(130)
    except Exception as exc:  # one line and the CLI's exit codes
        line, code = describe_error(exc)
        sys.stderr.write(line + "\n")
        sys.exit(code)
    sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")


# --------------------------------------------------------------------------- one process per run directory


def _lock_owner(run_dir: Path) -> int | None:
    """The pid a live lock names, 0 for a start in progress, None when the lock is free or stale."""
    lock = Path(run_dir) / LOCK_FILE
    try:
        text = lock.read_text().strip()
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return None
    if not text:
        return 0 if age < LOCK_GRACE_S else None
    try:
        pid = int(text)
    except ValueError:
        return None
    proc = _PROCS.get(str(Path(run_dir).resolve()))
    if proc is not None and proc.pid == pid:
        return pid if proc.poll() is None else None
    return pid if pid_alive(pid) else None


def _acquire_lock(run_dir: Path) -> None:
    """Create ``ui-lock`` atomically; ``RunActive`` while a live process holds it (a stale one is replaced)."""
    lock = Path(run_dir) / LOCK_FILE
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            owner = _lock_owner(run_dir)
            if owner is not None:
                who = f"process {owner}" if owner else "another start"
                raise RunActive(f"a search is already running in {Path(run_dir).name} ({who}); "
                                "wait for it or cancel it first") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
            continue
        os.close(fd)
        return
    raise RunActive(f"{Path(run_dir).name} is being started by someone else")


def _processes(run_dir: Path) -> list[dict[str, Any]]:
    """Every process the dashboard started in ``run_dir`` (oldest first)."""
    doc = _read(Path(run_dir) / PROCESS_FILE)
    if not isinstance(doc, dict):
        return []
    history = doc.get("history") or [{k: doc[k] for k in ("pid", "command", "started") if k in doc}]
    return [p for p in history if isinstance(p, dict) and "pid" in p]


def launch(cmd: list[str], run_dir: Path, locked: bool = False,
           env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in its own process group, its output in ``run_dir``; never waits for it.

    Takes the run directory's lock unless the caller holds it (``locked``): a second process is refused."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not locked:
        _acquire_lock(run_dir)
    for name in (EXIT_FILE, STDOUT_FILE, PROGRESS_FILE):
        (run_dir / name).unlink(missing_ok=True)
    out = (run_dir / STDOUT_FILE).open("wb")
    err = (run_dir / LOG_FILE).open("wb")
    try:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
                                env=env)
    except BaseException:
        (run_dir / LOCK_FILE).unlink(missing_ok=True)
        raise
    finally:
        out.close()
        err.close()
    (run_dir / LOCK_FILE).write_text(str(proc.pid))
    entry = {"pid": proc.pid, "command": [c for c in cmd], "started": time.time(), "host": socket.gethostname()}
    history = [*_processes(run_dir), entry]
    (run_dir / PROCESS_FILE).write_text(json.dumps({**entry, "history": history}))
    _PROCS[str(run_dir.resolve())] = proc
    return proc


# --------------------------------------------------------------------------- state


def _last_error(run_dir: Path) -> str:
    """The last error line the CLI wrote to stderr (one line)."""
    lines = log_tail(run_dir, 200)
    for line in reversed(lines):
        if line.startswith("advisor:"):
            return line
    return lines[-1] if lines else ""


def log_tail(run_dir: Path, n: int = 5) -> list[str]:
    """The last ``n`` non-empty lines of the dashboard process's log (empty for runs started elsewhere)."""
    log = Path(run_dir) / LOG_FILE
    try:
        with log.open("rb") as f:
            f.seek(max(0, log.stat().st_size - 16384))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return [ln.rstrip() for ln in text.splitlines() if ln.strip()][-n:]


def report_doc(run_dir: Path) -> dict[str, Any] | None:
    """The run's report.json, or None when it is missing or being written."""
    doc = _read(Path(run_dir) / REPORT_NAME)
    return doc if isinstance(doc, dict) else None


def run_status(run_dir: Path) -> RunStatus:
    """Whether the run is running, and how it ended: from the dashboard's process when it started one there,
    otherwise from the run's storage, the processes on this machine and report.json (``storage_status``)."""
    run_dir = Path(run_dir)
    exit_file = run_dir / EXIT_FILE
    proc = _PROCS.get(str(run_dir.resolve()))
    if proc is not None and not exit_file.exists():
        rc = proc.poll()
        if rc is None:
            return RunStatus("running", None, "")
        exit_file.write_text(json.dumps({"returncode": rc, "cancelled": False}))
    procs = _processes(run_dir)
    if not exit_file.exists() and procs:
        if _lock_owner(run_dir) is not None or any(pid_alive(int(p["pid"])) for p in procs[-1:]):
            return RunStatus("running", None, "")
    if exit_file.exists():
        info = _read(exit_file) or {}
        rc = info.get("returncode")
        if info.get("cancelled"):
            return RunStatus("cancelled", rc, "")
        if rc == 0:
            return RunStatus("finished", 0, "")
        return RunStatus("failed", rc, _last_error(run_dir) or f"the run exited with code {rc}")
    if procs:  # started by a dashboard that is gone, and ended without a recorded exit
        if (run_dir / STDOUT_FILE).exists() and (run_dir / STDOUT_FILE).stat().st_size > 0 \
                and report_doc(run_dir) is not None:
            return RunStatus("finished", None, "")
        return RunStatus("failed", None, _last_error(run_dir) or "the run's process is gone")
    return storage_status(run_dir)


def local_processes(run_dir: Path, run: str | None = None) -> list[int]:
    """Pids of advisor processes on this machine working on ``run_dir``, read from /proc (empty without it):
    ``--run-dir DIR`` or a background ``RUN_DIR`` naming it, ``--run NAME`` naming ``run``, or an
    ``advisor recommend`` without ``--run-dir`` whose default folder (``./advisor-runs``) holds the run and
    which started before the run's config.json was written."""
    from advisor.runs.location import DEFAULT_RUNS_DIR

    target = Path(run_dir).resolve()
    proc_root = Path("/proc")
    if not proc_root.is_dir():
        return []
    try:
        config_time = (target / CONFIG_NAME).stat().st_mtime
    except OSError:
        config_time = None
    found = []
    for entry in proc_root.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            cwd = Path(os.readlink(entry / "cwd"))
            started = entry.stat().st_ctime
        except OSError:
            continue
        if not any("advisor" in a for a in argv[:3]):
            continue
        values = [a.split("=", 1)[1] for a in argv if a.startswith("--run-dir=")]
        values += [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--run-dir"]
        if "advisor.runs.background" in argv:
            values += [a for a in argv[argv.index("advisor.runs.background") + 1:] if not a.startswith("-")][:1]
        names = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--run"]
        if any((cwd / v).resolve() == target for v in values):
            found.append(int(entry.name))
        elif not values and run and run in names:
            found.append(int(entry.name))
        elif not values and not names and "recommend" in argv and (cwd / DEFAULT_RUNS_DIR).resolve() == \
                target.parent and config_time is not None and started <= config_time:
            found.append(int(entry.name))
    return found


def _storage_trials(run_dir: Path) -> tuple[list[dict[str, Any]], list[Any]]:
    """(trial_progress rows, every trial of the run), empty when the storage cannot be read yet."""
    try:
        location = location_of(run_dir)
        if location is None or (not location.is_rdb and not Path(location.storage).exists()):
            return [], []
        return _trial_rows(location)
    except Exception:  # noqa: BLE001 - a storage being created or unreachable: no trial yet
        return [], []


def _advisor_alive(pid: int) -> bool:
    """Whether ``pid`` lives and is an advisor process (a reused pid is not taken for a worker)."""
    if not pid_alive(pid):
        return False
    try:
        return "advisor" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return not Path("/proc").is_dir()


def _live_workers(trials: list[Any]) -> bool:
    """Whether a process that ran one of ``trials`` still lives: a RUNNING trial elsewhere, or a worker pid
    of this machine still alive (it may be in its seed repeats, after its last trial)."""
    from advisor.runs.storage import worker_host

    host = worker_host()
    for t in trials:
        worker = str(t.user_attrs.get("worker", ""))
        w_host, _, pid = worker.rpartition(":")
        if w_host == host and pid.isdigit():
            if _advisor_alive(int(pid)):
                return True
        elif t.state.name == "RUNNING":
            return True
    return False


def storage_status(run_dir: Path) -> RunStatus:
    """The state of a run started anywhere (CLI, workers): running while a process on this machine names
    the run directory or a worker of its trials lives; finished when report.json is newer than its last
    trial; failed when no process works on it and its report is missing or older than its trials."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_NAME).exists():
        return RunStatus("idle", None, "")
    _, trials = _storage_trials(run_dir)
    if local_processes(run_dir, run_name(run_dir)) or _live_workers(trials):
        return RunStatus("running", None, "")
    report = run_dir / REPORT_NAME
    last_trial = max((t.datetime_complete.timestamp() for t in trials if t.datetime_complete), default=0.0)
    if report.exists() and report.stat().st_mtime + 1.0 >= last_trial:
        return RunStatus("finished", None, "")
    if report.exists():
        return RunStatus("failed", None, "the last invocation stopped after its trials without a new report; "
                                         "resume the run to finish it")
    return RunStatus("failed", None, "no process works on this run and it has no report (interrupted or "
                                     "crashed); resume the run to go on from its finished trials")


def _trial_rows(location: RunLocation) -> tuple[list[dict[str, Any]], list[Any]]:
    from optuna.trial import TrialState

    name = location.run
    storage = location.optuna_storage(heartbeat=False)
    rows, every = [], []
    for summary in storage.get_all_studies():
        study_name = summary.study_name
        if not study_name.startswith(f"{name}:"):
            continue
        sid = storage.get_study_id_from_name(study_name)
        trials = storage.get_all_trials(sid, deepcopy=False)
        every += trials
        count = {s: sum(t.state == s for t in trials) for s in TrialState}
        values = [t.value for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        failed = [t for t in trials if t.state == TrialState.FAIL]
        errors = sum("error" in t.user_attrs for t in failed)
        bookkeeping = sum(("duplicate" in t.user_attrs or "surplus" in t.user_attrs) and "error" not in t.user_attrs
                          for t in failed)
        walls = [float(t.user_attrs["wall_s"]) for t in trials
                 if t.state == TrialState.COMPLETE and isinstance(t.user_attrs.get("wall_s"), int | float)]
        rows.append({
            "strategy": study_name[len(name) + 1:],
            "finished": count[TrialState.COMPLETE] + count[TrialState.PRUNED],
            "pruned": count[TrialState.PRUNED],
            "running": count[TrialState.RUNNING],
            "failed": errors,  # the strategy's own errors; a trial cut by a cancel or a dead process is not one
            "interrupted": len(failed) - errors - bookkeeping,
            "budget": int(storage.get_study_user_attrs(sid).get("budget", 0)),
            "best": max(values) if values else None,
            "mean_wall_s": sum(walls) / len(walls) if walls else None,
        })
    return sorted(rows, key=lambda r: r["strategy"]), every


def run_name(run_dir: Path) -> str | None:
    """The run name recorded in config.json (None before the run has written it)."""
    config = _read(Path(run_dir) / CONFIG_NAME)
    return config.get("run") if isinstance(config, dict) else None


def location_of(run_dir: Path) -> RunLocation | None:
    """The run's location from its config.json (None before the run has written it)."""
    if not (Path(run_dir) / CONFIG_NAME).exists():
        return None
    return RunLocation.from_dir(run_dir)


def trial_progress(run_dir: Path) -> list[dict[str, Any]]:
    """Per strategy: finished, running, failed and interrupted trials and the budget, from the run's storage."""
    location = location_of(run_dir)
    if location is None or (not location.is_rdb and not Path(location.storage).exists()):
        return []
    return _trial_rows(location)[0]


def _started_at(run_dir: Path, state: str) -> float | None:
    """When the current (or last) invocation started: the dashboard's process, a local process, config.json."""
    procs = _processes(run_dir)
    if procs:
        return float(procs[-1].get("started") or 0) or None
    pids = local_processes(run_dir, run_name(run_dir)) if state == "running" else []
    if pids:
        try:
            return min(os.stat(f"/proc/{p}").st_ctime for p in pids)
        except OSError:
            pass
    try:
        return (Path(run_dir) / CONFIG_NAME).stat().st_mtime
    except OSError:
        return None


def _estimate(rows: list[dict[str, Any]], phase: str, trials_left: int, repeats_left: int, n_seeds: int,
              elapsed: float | None, trials_done: int) -> float | None:
    """Seconds left, from the mean wall time of the run's finished trials: the trials left, then ``n_seeds``
    fits per strategy still to repeat, then 2 x ``n_seeds`` retrains on the larger train+validation split."""
    walls = [r["mean_wall_s"] for r in rows if r.get("mean_wall_s")]
    per_fit = sum(walls) / len(walls) if walls else None
    if per_fit is None and elapsed and trials_done:
        per_fit = elapsed / trials_done
    if per_fit is None:
        return None
    retrains = 2 * n_seeds * per_fit * 1.25
    if phase == "trials":
        return trials_left * per_fit + len(rows) * n_seeds * per_fit + retrains
    if phase == "seed repeats":
        return repeats_left * n_seeds * per_fit + retrains
    if phase in ("test retrains", "seed repeats or test retrains"):
        return retrains
    return None


def run_progress(run_dir: Path) -> Progress:
    """The run's phase and counts (from ``ui-progress.json`` when the dashboard started it, from the storage
    otherwise), elapsed time, an estimate of the rest, the log's last lines; 100% only with a complete report."""
    run_dir = Path(run_dir)
    status = run_status(run_dir)
    rows, _ = _storage_trials(run_dir)
    done = sum(min(r["finished"], r["budget"]) for r in rows)
    total = sum(r["budget"] for r in rows)
    ui = _read(run_dir / PROGRESS_FILE) if _processes(run_dir) else None
    ui = ui if isinstance(ui, dict) else {}
    if not rows and ui.get("trials_total"):  # the storage is not readable yet: the child's own count
        done, total = int(ui.get("trials_done") or 0), int(ui["trials_total"])
    report = report_doc(run_dir)
    n_seeds = int(ui.get("n_seeds") or 5)
    repeats_total = int(ui.get("repeats_total") or len(rows))
    repeats_done = int(ui.get("repeats_done") or 0)
    if status.state == "running":
        if ui.get("phase") and ui["phase"] != "done":
            phase = str(ui["phase"])
        elif not rows:
            phase = "quick advice"
        elif done < total:
            phase = "trials"
        else:
            phase = "seed repeats or test retrains"
    elif report is not None and status.state == "finished":
        phase = "done"
    else:
        phase = "stopped"
    started = _started_at(run_dir, status.state)
    if status.state == "running":
        elapsed = time.time() - started if started else None
    else:
        elapsed = (report or {}).get("run", {}).get("elapsed_s") if report else None
    remaining = _estimate(rows, phase, total - done, repeats_total - repeats_done, n_seeds, elapsed, done) \
        if status.state == "running" else None
    complete = report is not None and bool(report.get("complete")) and status.state == "finished"
    if complete:
        fraction = 1.0
    elif elapsed and remaining is not None:
        fraction = min(0.99, elapsed / (elapsed + remaining))
    elif total:
        fraction = min(0.99, 0.9 * done / total)
    else:
        fraction = 0.0
    return Progress(status.state, phase, done, total, repeats_done, repeats_total,
                    round(elapsed, 1) if elapsed is not None else None,
                    round(remaining, 1) if remaining is not None else None, fraction, log_tail(run_dir), rows)


def cancel_run(run_dir: Path, wait_s: float = 10.0) -> bool:
    """Stop every process group the dashboard started in the run (SIGTERM, then SIGKILL); True when one ran.

    A run started elsewhere (the CLI) is not the dashboard's to stop: False."""
    run_dir = Path(run_dir)
    procs = _processes(run_dir)
    if not procs or run_status(run_dir).state != "running":
        return False
    own = _PROCS.get(str(run_dir.resolve()))
    groups = sorted({int(p["pid"]) for p in procs} | ({own.pid} if own is not None else set()))

    def signal_all(sig: int) -> list[int]:
        alive = []
        for pgid in groups:
            try:
                os.killpg(pgid, sig)
                alive.append(pgid)
            except (ProcessLookupError, PermissionError):
                pass
        return alive

    signal_all(signal.SIGTERM)
    deadline = time.time() + wait_s
    while time.time() < deadline:
        if own is not None:
            own.poll()
        if not signal_all(0):
            break
        time.sleep(0.1)
    else:
        signal_all(signal.SIGKILL)
    rc = None
    if own is not None:
        try:
            rc = own.wait(5)
        except subprocess.TimeoutExpired:
            rc = None
    (run_dir / EXIT_FILE).write_text(json.dumps({"returncode": rc, "cancelled": True, "at": time.time()}))
    (run_dir / LOCK_FILE).unlink(missing_ok=True)
    return True


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


def _data_label(config: dict[str, Any]) -> str:
    req = config.get("request") or {}
    if req.get("demo"):
        return f"scenario {req['demo']}"
    parts = [Path(str(req[k])).name for k in ("source", "target") if req.get(k)]
    return " -> ".join(parts) or "-"


def summary(run_dir: Path) -> dict[str, Any]:
    """One row of the runs table: state, data, verdict, pick, gain with its interval, duration, trials."""
    d = Path(run_dir)
    config = _read(d / CONFIG_NAME) or {}
    doc = report_doc(d)
    status = run_status(d)
    rec = (doc or {}).get("recommendation") or {}
    strategies = (doc or {}).get("strategies") or []
    if doc is not None and status.state != "running":
        done = sum(min(int(r.get("trials") or 0), int(r.get("budget") or 0)) for r in strategies)
        budget = sum(int(r.get("budget") or 0) for r in strategies)
    else:
        rows, _ = _storage_trials(d)
        done = sum(min(r["finished"], r["budget"]) for r in rows)
        budget = sum(r["budget"] for r in rows)
    verdict = rec.get("verdict_code") or ("quick advice only" if doc is not None and not strategies else
                                          (doc or {}).get("verdict_missing") and "no verdict")
    return {
        "run": d.name, "dir": str(d), "name": config.get("run") or d.name,
        "modified": _dt.datetime.fromtimestamp(d.stat().st_mtime), "state": status.state, "error": status.error,
        "process": status.state, "data": _data_label(config), "has_report": doc is not None,
        "complete": doc.get("complete") if doc is not None else None, "verdict": verdict or None,
        "recommended": rec.get("strategy"), "gain": rec.get("test_gain"), "gain_ci": rec.get("test_gain_ci"),
        "duration_s": (doc or {}).get("run", {}).get("elapsed_s") if doc else None,
        "trials": done, "budget": budget, "exported": exported_model(d) is not None,
    }


def list_runs(runs_dir: Path) -> list[dict[str, Any]]:
    """Run directories under ``runs_dir`` (those with config.json, or request.json while starting), newest first,
    each summarised by ``summary``; runs started from the CLI into the folder are listed like the dashboard's."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    rows = [summary(d) for d in root.iterdir()
            if d.is_dir() and ((d / CONFIG_NAME).exists() or (d / REQUEST_FILE).exists())]
    return sorted(rows, key=lambda r: r["modified"], reverse=True)


def find_run(runs_dir: Path, name: str) -> Path | None:
    """The run directory for ``?run=NAME``: the directory ``NAME`` under ``runs_dir``, or the one whose
    config.json names the run ``NAME`` (a run of a --storage computed here)."""
    root = Path(runs_dir)
    if not name or "/" in name or name in (".", ".."):
        return None
    if (root / name).is_dir():
        return root / name
    for d in root.iterdir() if root.is_dir() else []:
        if d.is_dir() and run_name(d) == name:
            return d
    return None


def delete_run(run_dir: Path) -> None:
    """Remove a run directory; refused while a process works on it. Its runs in an RDB storage stay there."""
    d = Path(run_dir)
    if run_status(d).state == "running":
        raise RunActive(f"{d.name} is running; cancel it before deleting it")
    if not (d / CONFIG_NAME).exists() and not (d / REQUEST_FILE).exists():
        raise InputError(f"{d} is not a run directory")
    shutil.rmtree(d)
    _PROCS.pop(str(d.resolve()), None)


def storage_runs(storage: str) -> list[dict[str, Any]]:
    """The runs of an Optuna storage (RDB URL or journal file): name, strategies, trials and budgets, and
    whether a trial is running. Read-only."""
    from optuna.trial import TrialState

    from advisor.runs.storage import open_storage

    if not storage:
        return []
    opened = open_storage(storage, heartbeat=False)
    runs: dict[str, dict[str, Any]] = {}
    for summary_ in opened.get_all_studies():
        run, sep, strategy = summary_.study_name.rpartition(":")
        if not sep:
            continue
        sid = opened.get_study_id_from_name(summary_.study_name)
        trials = opened.get_all_trials(sid, deepcopy=False)
        row = runs.setdefault(run, {"run": run, "strategies": [], "trials": 0, "budget": 0, "running": 0,
                                    "last": None})
        row["strategies"].append(strategy)
        budget = int(opened.get_study_user_attrs(sid).get("budget", 0))
        row["budget"] += budget
        row["trials"] += min(budget, sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials))
        row["running"] += sum(t.state == TrialState.RUNNING for t in trials)
        ends = [t.datetime_complete for t in trials if t.datetime_complete]
        if ends and (row["last"] is None or max(ends) > row["last"]):
            row["last"] = max(ends)
    for row in runs.values():
        row["state"] = "running" if row["running"] else ("trials done" if row["trials"] >= row["budget"]
                                                         else "stopped")
    return sorted(runs.values(), key=lambda r: r["last"].timestamp() if r["last"] else 0.0, reverse=True)


if __name__ == "__main__":
    main()
