"""End-to-end time of ``advisor recommend --demo`` from a cold cache, as a user runs it.

``python -m bench.bench_demo [--runs N] [--quick-runs N] [--scenario NAME]`` runs the CLI as a
subprocess, each time with a fresh ``TRANSFER_ADVISOR_CACHE`` and a fresh ``--run-dir`` (so the
source model is pretrained again and nothing resumes), and prints a markdown table with the
median (and min/max) wall-clock seconds of the full recommendation (default budget; target
≤ 180 s on a 2-core CPU) and of the quick advice alone (``--trials 0``; target < 20 s).
``--quick`` runs the full recommendation once and the quick advice twice.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

FULL_TARGET_S = 180.0
QUICK_TARGET_S = 20.0


@dataclass
class Timing:
    """Wall-clock seconds of repeated runs of one command."""

    what: str
    command: str
    seconds: list[float]
    target_s: float

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def row(self) -> str:
        ok = "meets" if self.median <= self.target_s else "misses"
        return (f"| {self.what} | `{self.command}` | {len(self.seconds)} | {self.median:.1f} | "
                f"{min(self.seconds):.1f} / {max(self.seconds):.1f} | ≤ {self.target_s:.0f} s ({ok}) |")


def time_cli(args: list[str]) -> float:
    """Seconds for one cold run of ``advisor ARGS`` (fresh cache and run directory)."""
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        env = {**os.environ, "TRANSFER_ADVISOR_CACHE": os.path.join(tmp, "cache")}
        cmd = [sys.executable, "-m", "advisor", *args, "--run-dir", os.path.join(tmp, "run"), "--json"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return elapsed


def main(argv: list[str] | None = None) -> None:
    """Time the demo and print the markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="cold runs of the full recommendation")
    parser.add_argument("--quick-runs", type=int, default=3, help="cold runs of --trials 0")
    parser.add_argument("--scenario", default=None, help="demo scenario (default: the CLI's default)")
    parser.add_argument("--quick", action="store_true", help="1 full run, 2 quick-advice runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.quick_runs = 1, 2
    demo = ["recommend", "--demo"] + ([args.scenario] if args.scenario else [])
    timings = [
        Timing("quick advice (--trials 0)", "advisor " + " ".join(demo) + " --trials 0",
               [time_cli(demo + ["--trials", "0"]) for _ in range(args.quick_runs)], QUICK_TARGET_S),
        Timing("full recommendation (default budget)", "advisor " + " ".join(demo),
               [time_cli(demo) for _ in range(args.runs)], FULL_TARGET_S),
    ]
    print("Cold cache: fresh TRANSFER_ADVISOR_CACHE and --run-dir per run (source model pretrained each time); "
          "subprocess wall-clock incl. Python start-up.\n")
    print("| what | command | runs | median s | min / max s | target |")
    print("|---|---|---|---|---|---|")
    for t in timings:
        print(t.row(), flush=True)


if __name__ == "__main__":
    main()
