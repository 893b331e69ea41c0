"""How the final pick among tuned strategies should treat a small validation split, measured offline.

Each harness record (``advisor/advice/model.json``: the oracle's tuned strategies on one scenario and target
split, with their validation and test scores) is replayed through pick rules: the top validation score
(ties within one validation sample to the advice), the one-standard-error rule (means within one standard
error of the leader are tied and the advice breaks the tie: the advisor's rule before it picked by
cross-validation on train+val, and still its fallback when nothing can be cross-validated, see
``bench/crossval_pick.py``), the same rule at half and twice
the band, and the advice alone. The advice is the learned model refitted without every record that shares
the scenario's target domain (leave-one-dataset-out), so no rule sees the outcome it is scored on. The records
hold no per-seed predictions, so the leader's standard error is the binomial one, sqrt(p (1 - p) / n_val); the
advisor computes it from its seed repeats (seeds and samples). Regret: the best test score of the record's
strategies minus the picked one's, in points.

    python -m bench.selection_rule [--out bench/results/selection.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from advisor.advice import learned

#: Band multipliers of the leader's standard error replayed (1.0 is the advisor's rule).
BANDS = (0.0, 0.5, 1.0, 2.0)


def pick(val: dict[str, float], prior: dict[str, float], n_val: int, k: float) -> str:
    """The one-standard-error pick: within ``k`` standard errors of the leader (at least one sample), the prior."""
    top = max(val.values())
    width = max(k * math.sqrt(max(top * (1 - top), 1e-4) / n_val), 1.0 / n_val)
    tied = [s for s in val if val[s] > top - width + 1e-12]
    return max(tied, key=lambda s: (prior.get(s, -math.inf), val[s], s))


def replay(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Every rule's regret per record and the means, overall and by labels per class."""
    records = [r for r in learned._dedupe(records) if learned.relative_outcomes(r)]
    rows = []
    for r in records:
        held = learned.target_domain(r)
        train = [t for t in records if held not in learned.domains(t)]
        prior = learned.fit(train).predict(r.get("evidence", {}))
        s = r["strategies"]
        test = {k: v["test_score"] for k, v in s.items()
                if v.get("test_score") is not None and v.get("val_score") is not None}
        if len(test) < 2:
            continue
        val = {k: s[k]["val_score"] for k in test}
        n_val = int(r["sizes"]["target_val"])
        best = max(test.values())
        regrets = {f"band_{k:g}_se": round(100 * (best - test[pick(val, prior, n_val, k)]), 2) for k in BANDS}
        regrets["advice_only"] = round(100 * (best - test[max(test, key=lambda x: (prior.get(x, -math.inf), x))]), 2)
        rows.append({"record": r["id"], "labels_per_class": r["sizes"].get("labels_per_class"), "n_val": n_val,
                     "regret_points": regrets})
    rules = list(rows[0]["regret_points"]) if rows else []

    def mean(sel: list[dict[str, Any]], rule: str) -> float | None:
        return round(float(np.mean([x["regret_points"][rule] for x in sel])), 2) if sel else None

    few = [x for x in rows if (x["labels_per_class"] or 0) <= 3]
    more = [x for x in rows if (x["labels_per_class"] or 0) > 3]
    summary = {rule: {"mean": mean(rows, rule), "labels_per_class_le_3": mean(few, rule),
                      "labels_per_class_gt_3": mean(more, rule)} for rule in rules}
    return {"records": len(rows), "advice": "learned, leave-one-dataset-out", "summary": summary, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(learned.SHIPPED_MODEL), help="a model file holding its records")
    parser.add_argument("--out", default="bench/results/selection.json")
    args = parser.parse_args(argv)
    _, records = learned.load_file(args.model)
    doc = replay(records)
    Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{doc['records']} records; mean top-pick regret in points (all / <=3 labels per class / more):")
    for rule, m in doc["summary"].items():
        print(f"  {rule:14} {m['mean']:5}  {m['labels_per_class_le_3']}  {m['labels_per_class_gt_3']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
