"""Reopen a run: its saved report plus the state of its budgets, read from its storage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from advisor.errors import InputError
from advisor.runs import CONFIG_NAME, read_json


def load_run_report(run_dir: Path) -> dict[str, Any]:
    """The run's report.json, with ``unfinished`` listing budgets still open. Trains nothing."""
    if not run_dir.exists():
        raise InputError(f"{run_dir} not found")
    if not (run_dir / CONFIG_NAME).exists():
        raise InputError(f"{run_dir} is not a run directory (no {CONFIG_NAME})")
    report = run_dir / "report.json"
    if not report.exists():
        raise InputError(f"{run_dir} has no report yet: its first invocation has not reached the quick advice")
    doc = read_json(report)
    unfinished = [f"{r['strategy']}: {r['trials']} of {r['budget']} trials finished"
                  for r in doc.get("strategies", []) if r.get("trials", 0) < r.get("budget", 0)]
    if doc.get("strategies") and not doc.get("complete", True) and not unfinished:
        unfinished.append("the last invocation stopped before every budget was spent (--timeout)")
    doc["unfinished"] = unfinished
    return doc
