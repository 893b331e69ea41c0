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

Stored areas (too long, or needing a GPU, to rerun with the rest; each bench writes its result file and the
section is rendered from it, with the file's date): ``verdict`` (``python -m bench.calibration``),
``advice`` (``advisor advice evaluate --json``), ``warmstart`` (``python -m bench.bench_warmstart``),
``retrain`` (``python -m bench.bench_retrain``),
``load`` (``python -m bench.bench_load``), ``images``
(``python -m bench.bench_images``) and ``gpu`` (``python -m bench.bench_gpu``). A missing file renders
as "not measured", never an estimate.

The published unsupervised numbers are read from ``../shared/data/README.md`` when it exists; the
hand-written reading of the stored quality results, ``bench/results/NOTES.md``, is included as is.

``--skip AREA`` keeps that area's section from the existing output file (marked with the date it
was generated), so one area can be refreshed without rerunning, or disturbing the timings of, the
others. Headings inside a command's output are demoted below the section's own.
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
TITLES = {
    "quality": "Recommendation quality vs an exhaustive oracle",
    "metrics": "Metrics: correctness and cost",
    "cache": "Frozen-prefix feature cache",
    "calibration": "Built-in scenario calibration",
    "demo": "End-to-end demo time",
}
RESULT_SETS = {  # stored harness results: folder -> (scenario file, what it covers, extra arguments)
    "bench/results/builtin-v8": ("bench/scenarios/builtin.toml",
                                 "built-in digits scenarios, 3 target splits: the current advisor against the current "
                                 "oracle (cached, oracle version 3) for quality and the pinned oracle (split 0) for "
                                 "compute",
                                 "--reuse-oracle bench/results/builtin --splits 3"),
    "bench/results/shared-v8": ("bench/scenarios/shared_data.toml",
                                "real data from ../shared/data, 3 target splits of the Office 3-label tasks: the "
                                "current advisor against the current oracle (cached, oracle version 3) for quality "
                                "and the pinned oracle (split 0) for compute",
                                "--reuse-oracle bench/results/shared --splits 3"),
    "bench/results/builtin": ("bench/scenarios/builtin.toml",
                              "built-in digits scenarios: advisor and oracle at commit aa26327 (the pinned oracle)",
                              ""),
    "bench/results/shared": ("bench/scenarios/shared_data.toml",
                             "real data from ../shared/data: advisor and oracle at commit aa26327 (the pinned oracle)",
                             ""),
}
SHARED_README = Path("../shared/data/README.md")
#: area -> (title, what, command, stored result file)
STORED = {
    "verdict": ("Verdict calibration and power",
                "A strategy compared with itself (the search's setting, two disjoint groups of 5 seeds, through "
                "advisor.verdict on test) must be called different at most at the nominal rate; power against "
                "a 12-seed oracle gain decided by a fixed paired rule in bench/calibration.py.",
                "python -m bench.calibration", "bench/results/calibration.json"),
    "advice": ("Quick advice, leave-one-dataset-out",
               "Kendall's tau and top-pick regret of the learned quick advice against the oracle, every record "
               "sharing the scored scenario's target domain dropped before the model is chosen and fitted "
               "(nested); the hand-set rule (each record's own hand-set scores) and the oracle's own validation "
               "ranking on the same scenarios for comparison.",
               "advisor advice evaluate --json > bench/results/advice.json", "bench/results/advice.json"),
    "selection": ("Final pick on a small validation split, replayed",
                  "Top-pick regret of pick rules replayed on the oracle records (tuned strategies' validation and "
                  "test scores): the top validation score, the one-standard-error rule with the learned advice "
                  "breaking ties (the advisor's fallback without cross-validation), half and twice that band, "
                  "and the advice alone; the advice refitted leave-one-dataset-out.",
                  "python -m bench.selection_rule", "bench/results/selection.json"),
    "crossval": ("B and the reference at the retrain's size, replayed",
                 "The advisor's own runs (harness splits): each strategy's chosen setting cross-validated on "
                 "train+val (3 folds) and retrained on train+val (3 seeds, scored on test); B and the reference "
                 "picked by validation (the run's own pick) or by cross-validation over all strategies, the ones "
                 "the race did not stop, or the top 3 by validation. B's regret against the run's best test "
                 "score, the test gain B - reference, and signs contradicting the oracle's verdict (beyond 2 "
                 "points).",
                 "python -m bench.crossval_pick --runs DIR", "bench/results/crossval_pick.json"),
    "warmstart": ("Warm starts from past runs",
                  "Median trials a study needs to reach the cold run's best validation score, warm-started from the "
                  "shipped harness records minus every record sharing the scenario's target domain.",
                  "python -m bench.bench_warmstart --search-seeds 0 1 2", "bench/results/warmstart.json"),
    "retrain": ("Retrain schedule",
                "The winner's retrain on train+val (about 4x the rows of the train split) with the search's best "
                "epoch count kept as passes over the data, against the search's optimiser steps kept; the pinned "
                "oracle's settings, 3 seeds each, scored on test.",
                "python -m bench.bench_retrain", "bench/results/retrain.md"),
    "load": ("Demo under load", "Wall-clock of the demo beside busy processes, old and new thread policy.",
             "python -m bench.bench_load", "bench/results/load.md"),
    "images": ("Image models on the CPU",
               "Peak RSS loading 3,000 photos at 224 px; resnet18 inference and training images/s; a linear-probe "
               "trial on 1,000 images, cached prefix vs uncached.",
               "python -m bench.bench_images > bench/results/images.json", "bench/results/images.json"),
    "gpu": ("GPU path", "resnet18 at 224 px with AMP, probe and fine-tune trials cached and uncached, host syncs per "
            "step, and a short recommendation on CPU and CUDA with the same seeds.",
            "python -m bench.bench_gpu > bench/results/gpu.json", "bench/results/gpu.json"),
}


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
        body = demote(self.body.strip())
        return (f"## {self.title}\n\n**What / how measured.** {self.what}\n\n"
                f"**Command.** `{self.command}`{took}\n\n{body}\n")


def flatten(doc: object, prefix: str = "") -> list[tuple[str, str]]:
    """A JSON document as (dotted key, value) rows, lists of scalars joined."""
    if isinstance(doc, dict):
        return [row for k, v in doc.items() for row in flatten(v, f"{prefix}{k}.")]
    if isinstance(doc, list) and any(isinstance(v, dict | list) for v in doc):
        return [row for i, v in enumerate(doc) for row in flatten(v, f"{prefix}{i}.")]
    shown = ", ".join(map(str, doc)) if isinstance(doc, list) else str(doc)
    return [(prefix.rstrip("."), shown)]


def stored_body(area: str, path: Path) -> str:
    """The section body of a stored area: its own markdown, or its JSON as a table; 'not measured' without."""
    if not path.exists():
        return f"Not measured: `{path}` does not exist (run the command above)."
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(path.stat().st_mtime))
    if path.suffix == ".md":
        return f"*(result file written {stamp})*\n\n" + path.read_text()
    doc = json.loads(path.read_text())
    if area == "verdict":
        from .calibration import markdown as calibration_markdown

        return f"*(result file written {stamp})*\n\n" + calibration_markdown(doc)
    if area in ("advice", "warmstart"):  # the summary; per-scenario rows are in the file
        doc = {k: v for k, v in doc["summary"].items()}
    if area == "crossval":  # one row per rule; per-run rows are in the file
        origin = doc.get("runs_from", doc["runs_folder"])
        return (f"*(result file written {stamp})*\n\n{len(doc['runs'])} runs: {origin}; "
                f"{doc['seeds']} test retrains per strategy. Points.\n\n| rule | B regret | reference regret | "
                "mean gain | sign agrees with the oracle | opposite sign |\n|---|---|---|---|---|---|\n"
                + "\n".join(f"| {rule} | {m['b_regret_points']} | {m['reference_regret_points']} | "
                             f"{m['mean_gain_points']} | {m['sign_agrees_with_oracle']} | {m['opposite_sign']} |"
                             for rule, m in doc["summary"].items()) + "\n")
    if area == "selection":  # one row per rule; per-record rows are in the file
        return (f"*(result file written {stamp})*\n\n{doc['records']} records, advice: {doc['advice']}. Mean "
                "top-pick regret in points.\n\n| rule | all | ≤ 3 labels per class | more labels |\n|---|---|---|---|\n"
                + "\n".join(f"| {rule} | {m['mean']} | {m['labels_per_class_le_3']} | {m['labels_per_class_gt_3']} |"
                             for rule, m in doc["summary"].items()) + "\n")
    lines = doc.pop("lines", []) if isinstance(doc, dict) else []  # a bench's own one-line summaries
    rows = [r for r in flatten(doc) if len(r[1]) <= 200]
    return (f"*(result file written {stamp})*\n\n" + "".join(f"- {line}\n" for line in lines)
            + ("\n" if lines else "") + "| figure | value |\n|---|---|\n"
            + "\n".join(f"| {k} | {v} |" for k, v in rows) + "\n")


def demote(text: str) -> str:
    """``## `` headings (from a command's output) one level down, below the section's own."""
    return "\n".join("###" + line[2:] if line.startswith("## ") else line for line in text.splitlines())


def previous_sections(path: Path, titles: list[str]) -> tuple[dict[str, str], str]:
    """The sections of an earlier BENCHMARKS.md with these titles, and the date it was generated."""
    if not path.exists():
        return {}, ""
    lines = path.read_text().splitlines()
    generated = ""
    for line in lines[:4]:
        if line.startswith("Generated by") and " on " in line:
            generated = line.split(" on ", 1)[1].split(". ", 1)[0]
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith("## "):  # every section ends at the next one, kept or not
            current = sections.setdefault(line[3:].strip(), [line]) if line[3:].strip() in titles else None
        elif current is not None:
            current.append(line)
    return {t: (v[0] + "\n" + demote("\n".join(v[1:]))).rstrip() + "\n" for t, v in sections.items()}, generated


def kept(title: str, previous: dict[str, str], generated: str) -> str | None:
    """An earlier section, marked as kept (``None`` when the earlier file has none)."""
    old = previous.get(title)
    if old is None:
        return None
    head, _, rest = old.partition("\n")
    note = "" if "(kept from" in rest else f"\n\n*(kept from the BENCHMARKS.md generated {generated})*"
    return head + note + "\n" + rest


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
    for folder, (toml, what, extra) in RESULT_SETS.items():
        if rerun:
            cmd = [sys.executable, "-m", "bench.quality", "--scenarios", toml, *extra.split(), "--out", folder]
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
        args = f"{' --quick' if doc.get('quick') else ''}{' ' + extra if extra else ''}"
        if (doc.get("splits") or 1) > 1 and "--splits" not in extra:  # several target split seeds (bench/quality.py)
            args += f" --splits {doc['splits']}"
        if doc.get("advice_model") == "shipped":
            args += " --advice-model shipped"
        parts.append(f"### {what}\n\nCommand: `python -m bench.quality --scenarios {doc['scenarios_file']}"
                     f"{args} --out {folder}`; measured {doc.get('date')} on "
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
    quality_title = TITLES["quality"]
    previous, generated = previous_sections(Path(args.out), list(TITLES.values()))
    sections: list[Section | str] = []
    if "quality" in args.skip:
        sections.append(kept(quality_title, previous, generated) or "")
    else:
        body, took = quality_body(args.quick, args.run_quality)
        sections.append(Section(
            quality_title,
            "Per scenario: the advisor with its default budget through the public API, against an oracle "
            "(every strategy on a fixed grid of learning rate x its knob (λ, α, ...) x freeze depth, 3 seeds per "
            "point (2 when quick), selected on validation, retrained on train+val with each seed and scored "
            "on test as the mean; verdict by the oracle's own fixed rule: B, the best non-reference strategy, "
            "against the best reference-role strategy (`target_only`, `target_linear`), each by its tuned "
            "setting's 3-fold cross-validated score on train+val), plus logistic-regression floors. With "
            "`--reuse-oracle DIR` the oracle stored at commit aa26327 is the compute denominator only; quality is "
            "graded against the current oracle (oracle version 4). With "
            "`--splits N` the built-ins and the scenarios with at most 3 labels per class also run on N target "
            "split seeds (every split's oracle cached under `bench/results/oracle/`), summarised over "
            "scenario x split: regret mean and SD, verdict agreement where the oracle is stable over the splits, "
            "opposite-sign verdicts, fixed policies. The advice ranks with a model refitted without the "
            "scenario's target domain (out of sample) unless `--advice-model shipped`. Rules in "
            "`bench/quality.py`'s docstring.",
            "python -m bench.quality --scenarios FILE [--quick] [--splits N] --out DIR", body, took))
    commands = {
        "metrics": (TITLES["metrics"],
                    "MMD permutation test vs recomputation, LogME vs the authors' algorithm, MMD peak memory.",
                    [py, "-m", "bench.bench_metrics", *q]),
        "cache": (TITLES["cache"],
                  "Seconds per training epoch with the cached frozen prefix vs recomputing it, per freeze depth.",
                  [py, "-m", "bench.bench_cache", *(["--models", "cnn"] if args.quick else [])]),
        "calibration": (TITLES["calibration"],
                        "Does each digits scenario show the ordering it promises (test accuracy per seed, "
                        "validation NTG intervals)?",
                        [py, "-m", "bench.calibrate_scenarios", *(["--seeds", "0"] if args.quick else [])]),
        "demo": (TITLES["demo"],
                 "`advisor recommend --demo` as a subprocess from a cold cache (fresh cache and run dir).",
                 [py, "-m", "bench.bench_demo", *q]),
    }
    for area, (title, what, cmd) in commands.items():
        if area in args.skip:
            sections.append(kept(title, previous, generated) or "")
            continue
        print(f"running {area}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        body, took = run_command(cmd)
        shown = "python " + " ".join(cmd[1:])
        sections.append(Section(title, what, shown, body, took))
    for area, (title, what, command, path) in STORED.items():
        sections.append(Section(title, what, command, stored_body(area, Path(path))))
    m = machine()
    head = (f"# Benchmarks\n\nGenerated by `python -m bench.run_all{' --quick' if args.quick else ''}` on "
            f"{time.strftime('%Y-%m-%d %H:%M')}. Machine: {m['nproc']} cores ({m['cpu']}), torch {m['torch']}, "
            f"Python {m['python']}, CPU only, shared with other work (timings are noisy). Areas kept from the "
            f"previous run: {', '.join(args.skip) or 'none'}.\n")
    rendered = [s.render() if isinstance(s, Section) else s for s in sections]
    Path(args.out).write_text(head + "\n" + "\n".join(r for r in rendered if r))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
