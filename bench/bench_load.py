"""``advisor recommend --demo`` under load: alone, beside 1 and beside 3 busy processes, old and new thread policy.

``python -m bench.bench_load [--quick] [--trials N] [--busy 0,1,3] [--limit S] [--out bench/results/load.md]``

A busy process is ``python -c "while True: pass"`` (one core each). Every measured run is a cold
``--run-dir`` (nothing resumes; the feature cache is rebuilt) with the source model's pretraining
cache warmed once beforehand (so each run measures the recommendation, not pretraining).

Policies:

- ``before``: torch's defaults, as the advisor had them: ``--threads`` = the core count and
  OpenMP's own wait policy (``TRANSFER_ADVISOR_LEGACY_THREADS=1``, ``OMP_WAIT_POLICY`` unset).
- ``after``: the advisor's defaults: threads = the cores not already busy, ``OMP_WAIT_POLICY=PASSIVE``.

A run past ``--limit`` seconds is stopped and recorded as at least that long. Prints one JSON
document on stdout and writes a markdown table (``--out``). Target: beside 3 busy processes at
most 4x the time alone (``after``). ``--quick``: ``--trials 1 --max-epochs 10``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

TARGET_RATIO = 4.0
BUSY_CODE = "while True: pass"


@dataclass
class Measure:
    """One timed run."""

    policy: str
    busy: int
    seconds: float
    completed: bool  # False: stopped at the limit (seconds is a lower bound)
    threads: str


def _env(policy: str, cache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TRANSFER_ADVISOR_LEGACY_THREADS")}
    env["TRANSFER_ADVISOR_CACHE"] = cache
    env["TRANSFER_ADVISOR_NO_PLUGINS"] = "1"
    if policy == "before":
        env["TRANSFER_ADVISOR_LEGACY_THREADS"] = "1"
    return env


def _command(policy: str, run_dir: str, extra: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "advisor", "recommend", "--demo", *extra, "--run-dir", run_dir, "--json"]
    if policy == "before":
        cmd += ["--threads", str(os.cpu_count() or 1)]
    return cmd


def run_once(policy: str, busy: int, extra: list[str], cache: str, limit: float) -> Measure:
    """Time one cold run beside ``busy`` busy processes (started first, stopped after)."""
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY_CODE]) for _ in range(busy)]
    try:
        time.sleep(1.0 if busy else 0.0)  # let the busy processes get going
        with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
            cmd = _command(policy, os.path.join(tmp, "run"), extra)
            start = time.perf_counter()
            proc = subprocess.Popen(cmd, env=_env(policy, cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
            try:
                out, err = proc.communicate(timeout=limit)
                completed = True
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                completed = False
            seconds = time.perf_counter() - start
            if completed and proc.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {err.strip()[-500:]}")
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    threads = f"--threads {os.cpu_count()}" if policy == "before" else "default (free cores)"
    return Measure(policy, busy, round(seconds, 1), completed, threads)


def markdown(measures: list[Measure], extra: list[str], limit: float) -> str:
    """The table: seconds and ratio to the same policy's time alone."""
    alone = {m.policy: m.seconds for m in measures if m.busy == 0}
    lines = [
        f"`advisor recommend --demo {' '.join(extra)}` (cold run directory, warmed pretraining cache) on "
        f"{os.cpu_count()} cores beside N busy processes (`python -c \"{BUSY_CODE}\"`). "
        "before: torch's defaults (`--threads` = cores, OpenMP's own wait policy); "
        "after: threads = free cores, `OMP_WAIT_POLICY=PASSIVE`. "
        f"Target: beside 3 busy processes at most {TARGET_RATIO:g}x the time alone.",
        "",
        "| policy | busy processes | threads | seconds | x alone |",
        "|---|---|---|---|---|",
    ]
    for m in measures:
        secs = f"{m.seconds:.1f}" if m.completed else f"> {limit:.0f} (stopped)"
        ratio = f"{m.seconds / alone[m.policy]:.2f}" if m.policy in alone and alone[m.policy] else "-"
        if not m.completed:
            ratio = f"> {ratio}"
        lines.append(f"| {m.policy} | {m.busy} | {m.threads} | {secs} | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="--trials 1 --max-epochs 10")
    parser.add_argument("--trials", type=int, default=None, help="trials per strategy (default: the CLI's)")
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--busy", default="0,1,3", help="numbers of busy processes, comma-separated")
    parser.add_argument("--policies", default="before,after")
    parser.add_argument("--limit", type=float, default=900.0, help="seconds after which a run is stopped")
    parser.add_argument("--out", default="bench/results/load.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials = args.trials or 1
        args.max_epochs = args.max_epochs or 10
    extra = []
    if args.trials is not None:
        extra += ["--trials", str(args.trials)]
    if args.max_epochs is not None:
        extra += ["--max-epochs", str(args.max_epochs)]
    busy = [int(b) for b in args.busy.split(",")]
    measures = []
    with tempfile.TemporaryDirectory(prefix="bench-load-cache-") as cache:
        with tempfile.TemporaryDirectory() as warm:  # pretrain the source model once, untimed
            subprocess.run([sys.executable, "-m", "advisor", "recommend", "--demo", "--trials", "0", "--run-dir",
                            warm, "--json"], env=_env("after", cache), capture_output=True, check=True)
        for policy in args.policies.split(","):
            for n in busy:
                m = run_once(policy, n, extra, cache, args.limit)
                print(f"{policy} beside {n} busy: {m.seconds:.1f} s{'' if m.completed else ' (stopped)'}",
                      file=sys.stderr, flush=True)
                measures.append(m)
    md = markdown(measures, extra, args.limit)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(md)
    alone = {m.policy: m.seconds for m in measures if m.busy == 0}
    doc = {"command": f"advisor recommend --demo {' '.join(extra)}".strip(), "cores": os.cpu_count(),
           "limit_s": args.limit, "target_ratio": TARGET_RATIO, "measures": [asdict(m) for m in measures],
           "ratios": {f"{m.policy}/{m.busy}": round(m.seconds / alone[m.policy], 2)
                      for m in measures if alone.get(m.policy)},
           "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
