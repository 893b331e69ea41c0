"""Regenerate BENCHMARKS.md: one section per area, each benchmark's own markdown table stitched in.

``python -m bench.run_all [--quick] [--run-quality] [--skip AREA ...] [--out BENCHMARKS.md]``

Areas (each a subprocess from the repository root, one torch thread where the command allows):

- ``quality``: the quality harness (``bench.quality``). Heavy, so by default the section is
  rendered from stored results (``bench/results/*/quality.json``, written by earlier harness
  runs, their date and command recorded); ``--run-quality`` reruns the harness (``--quick`` too).
- ``metrics``: ``python -m bench.bench_metrics [--quick]``.
- ``cache``: ``python -m bench.bench_cache`` (``--quick``: the cnn only).
- ``calibration``: ``python -m bench.calibrate_scenarios`` (``--quick``: seed 0 only).
- ``demo``: ``python -m bench.bench_demo [--quick]``.

The published unsupervised numbers are read from ``../shared/data/README.md`` when it exists; the
hand-written reading of the stored quality results, ``bench/results/NOTES.md``, is included as is.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .quality import machine

AREAS = ("quality", "metrics", "cache", "calibration", "demo")
RESULT_SETS = {  # stored harness results: folder -> (scenario file, what it covers)
    "bench/results/builtin": ("bench/scenarios/builtin.toml", "built-in digits scenarios"),
    "bench/results/shared": ("bench/scenarios/shared_data.toml", "real data from ../shared/data"),
}
SHARED_README = Path("../shared/data/README.md")


@dataclass
class Section:
    """One area of BENCHMARKS.md."""

    title: str
    what: str
    command: str
    body: str
    seconds: float | None = None

    def render(self) -> str:
        took = f" (took {self.seconds:.0f} s)" if self.seconds is not None else ""
        return (f"## {self.title}\n\n**What / how measured.** {self.what}\n\n"
                f"**Command.** `{self.command}`{took}\n\n{self.body.strip()}\n")


def run_command(cmd: list[str]) -> tuple[str, float]:
    """stdout of ``cmd`` (stderr on failure) and its wall-clock seconds."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        return f"**Failed** (exit {proc.returncode}):\n\n```\n{proc.stderr.strip()[-2000:]}\n```\n", took
    return proc.stdout, took


def published_tables() -> str:
    """The two published tables of ../shared/data/README.md (unsupervised: no target labels)."""
    if not SHARED_README.exists():
        return "(../shared/data/README.md not found: published numbers not shown)\n"
    out, block = [], []
    for line in SHARED_README.read_text().splitlines():
        if line.startswith("|"):
            block.append(line)
        elif block:
            out.append("\n".join(block))
            block = []
    if block:
        out.append("\n".join(block))
    return "\n\n".join(out) + "\n"


def quality_body(quick: bool, rerun: bool) -> tuple[str, float | None]:
    """The quality tables, from stored results or a fresh run of the harness."""
    parts, took = [], 0.0
    for folder, (toml, what) in RESULT_SETS.items():
        if rerun:
            cmd = [sys.executable, "-m", "bench.quality", "--scenarios", toml, "--out", folder]
            _, t = run_command(cmd + (["--quick"] if quick else []))
            took += t
        path = Path(folder) / "quality.json"
        if not path.exists():
            parts.append(f"### {what}\n\nNo stored results in `{folder}`: run "
                         f"`python -m bench.quality --scenarios {toml} --quick --out {folder}`.\n")
            continue
        doc = json.loads(path.read_text())
        m = doc.get("machine", {})
        md = (Path(folder) / "quality.md").read_text()
        parts.append(f"### {what}\n\nCommand: `python -m bench.quality --scenarios {doc['scenarios_file']}"
                     f"{' --quick' if doc.get('quick') else ''} --out {folder}`; measured {doc.get('date')} on "
                     f"{m.get('nproc')} cores ({m.get('cpu')}), torch {m.get('torch')}.\n\n{md}")
    parts.append("### Published numbers on the same data (reference; a different protocol)\n\n"
                 "Unsupervised domain adaptation: **no target labels** (source labels only), from "
                 "`../shared/data/README.md` (MEDA, ACM MM 2018; JDA, ICCV 2013). The harness rows above use "
                 "3 or 10 labelled target samples per class, so they are not the same measurement. Our 1NN check "
                 "after the same preprocessing: see `bench/results/shared/one_nn.md` when present.\n\n"
                 + published_tables())
    notes = Path("bench/results/NOTES.md")
    if notes.exists():
        parts.append("### Findings (written by hand from the stored results above)\n\n" + notes.read_text())
    one_nn = Path("bench/results/shared/one_nn.md")
    if one_nn.exists():
        parts.append("### 1NN reproduction (source labels only, all target rows)\n\n" + one_nn.read_text())
    return "\n".join(parts), (took if rerun else None)


def main(argv: list[str] | None = None) -> None:
    """Run every area and write BENCHMARKS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller settings everywhere")
    parser.add_argument("--run-quality", action="store_true", help="rerun the quality harness (heavy)")
    parser.add_argument("--skip", nargs="*", default=[], choices=AREAS)
    parser.add_argument("--out", default="BENCHMARKS.md")
    args = parser.parse_args(argv)
    py = sys.executable
    q = ["--quick"] if args.quick else []
    sections: list[Section] = []
    if "quality" not in args.skip:
        body, took = quality_body(args.quick, args.run_quality)
        sections.append(Section(
            "Recommendation quality vs an exhaustive oracle",
            "Per scenario: the advisor with its default budget through the public API, against an oracle "
            "(every strategy on a fixed grid over its knob x freeze depth, 3 seeds per point, 2 with --quick, "
            "selected on validation, retrained on train+val, scored once on test; verdict by the advisor's "
            "rule), plus logistic-regression floors. Rules in `bench/quality.py`'s docstring.",
            "python -m bench.quality --scenarios FILE [--quick] --out DIR", body, took))
    commands = {
        "metrics": ("Metrics: correctness and cost",
                    "MMD permutation test vs recomputation, LogME vs the authors' algorithm, MMD peak memory.",
                    [py, "-m", "bench.bench_metrics", *q]),
        "cache": ("Frozen-prefix feature cache",
                  "Seconds per training epoch with the cached frozen prefix vs recomputing it, per freeze depth.",
                  [py, "-m", "bench.bench_cache", *(["--models", "cnn"] if args.quick else [])]),
        "calibration": ("Built-in scenario calibration",
                        "Does each digits scenario show the ordering it promises (test accuracy per seed, "
                        "validation NTG intervals)?",
                        [py, "-m", "bench.calibrate_scenarios", *(["--seeds", "0"] if args.quick else [])]),
        "demo": ("End-to-end demo time",
                 "`advisor recommend --demo` as a subprocess from a cold cache (fresh cache and run dir).",
                 [py, "-m", "bench.bench_demo", *q]),
    }
    for area, (title, what, cmd) in commands.items():
        if area in args.skip:
            continue
        print(f"running {area}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        body, took = run_command(cmd)
        shown = "python " + " ".join(cmd[1:])
        sections.append(Section(title, what, shown, body, took))
    m = machine()
    head = (f"# Benchmarks\n\nGenerated by `python -m bench.run_all{' --quick' if args.quick else ''}` on "
            f"{time.strftime('%Y-%m-%d %H:%M')}. Machine: {m['nproc']} cores ({m['cpu']}), torch {m['torch']}, "
            f"Python {m['python']}, CPU only, shared with other work (timings are noisy). Skipped areas: "
            f"{', '.join(args.skip) or 'none'}.\n")
    Path(args.out).write_text(head + "\n" + "\n".join(s.render() for s in sections))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
