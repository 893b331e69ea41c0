"""Storage of the quality harness's oracle per scenario and target split, so a rerun never retrains it.

One gzipped JSON file per scenario and split: ``ROOT/<scenario>/split-<k>-<oracle version>.json.gz`` holding
``key`` (what the oracle was run on: scenario, split, seed, size, splits' sizes, the scenario's definition),
``oracle`` (its rows without predictions: scores, chosen parameters, seconds, fits; its verdict), and
``test_pred`` (per strategy, one row of test predictions per retrain seed, what the oracle's verdict needs)
with ``test_y``. The oracle version is ``ORACLE_VERSION`` plus a hash of the grid definition the caller
passes, so a changed grid never reads an old file; a file whose ``key`` differs from the caller's is ignored
(and overwritten by the recomputed oracle).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any

#: Bump when the oracle's rules change in a way the grid definition does not show (seeds, retrain, verdict).
#: 2: the retrain keeps its epochs as passes over train+val; 3: the reference is the best reference-role row
#: (target_only or target_linear) and target-fitted models use the scale floor; 4: B and the reference are each
#: the best of their group by 3-fold cross-validation on train+val (``bench.quality.oracle_decision``,
#: ``bench.oracle_refresh``)
ORACLE_VERSION = 4
DEFAULT_ROOT = Path("bench/results/oracle")


def oracle_version(grid: dict[str, Any]) -> str:
    """``v<ORACLE_VERSION>-<8 hex digits of the grid definition's hash>``."""
    digest = hashlib.sha256(json.dumps(grid, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"v{ORACLE_VERSION}-{digest}"


def cache_path(root: str | Path, scenario: str, split: int, version: str) -> Path:
    """Where the oracle of ``scenario``'s split ``split`` is stored."""
    return Path(root) / scenario / f"split-{split}-{version}.json.gz"


def read(path: Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The stored document if it exists, parses and was made for ``key``; else None."""
    if not path.exists():
        return None
    try:
        with gzip.open(path, "rt") as fh:
            doc = json.load(fh)
    except (OSError, ValueError, EOFError):
        return None
    return doc if doc.get("key") == json.loads(json.dumps(key)) else None


def write(path: Path, doc: dict[str, Any]) -> Path:
    """Write ``doc`` (must hold ``key``) atomically: a partial file never reads as a cache hit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with gzip.open(tmp, "wt") as fh:
        json.dump(doc, fh, separators=(",", ":"))
    tmp.replace(path)
    return path
