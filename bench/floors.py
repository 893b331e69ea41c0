"""Simple floors for the quality harness: logistic regression on target, source, and both pooled.

Each floor is ``sklearn.linear_model.LogisticRegression`` on the raw inputs flattened to one
row per sample (images: pixels; tables: the features exactly as the advisor sees them, i.e.
after the scenario's preprocessing). Rule: the target floors train on target train+val (the
same labelled target rows the advisor's final models see) and everything is scored once on
the target test split. Source rows join the target by class *name* (rows of a source class
the target lacks are dropped), like the built-in strategies' source term.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from advisor.data.domain import Domain, TargetSplits
from advisor.search.scoring import score


@dataclass
class Floors:
    """Test scores of the three logistic-regression floors (``None``: not applicable)."""

    target_only: float
    source_only: float | None
    pooled: float | None

    def best(self) -> float:
        """The best of the floors that apply."""
        return max(v for v in (self.target_only, self.source_only, self.pooled) if v is not None)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "best": self.best()}


def _flat(d: Domain) -> np.ndarray:
    return np.asarray(d.X, dtype=np.float64).reshape(len(d), -1)


def source_as_target(source: Domain, target_classes: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Source rows whose class name is a target class, relabelled to the target's class ids."""
    assert source.y is not None
    index = {name: i for i, name in enumerate(target_classes)}
    mapping = np.array([index.get(name, -1) for name in source.classes])
    mapped = mapping[source.y]
    keep = mapped >= 0
    return _flat(source)[keep], mapped[keep].astype(np.int64)


def _fit_score(X: np.ndarray, y: np.ndarray, test: Domain, score_name: str, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(X, y)
    return float(score(score_name, test.y, clf.predict(_flat(test))))


def logistic_floors(source: Domain | None, splits: TargetSplits, score_name: str = "accuracy",
                    seed: int = 0) -> Floors:
    """The three floors on fixed splits (see the module docstring for the rule)."""
    labelled = splits.train.concat(splits.val)
    Xt, yt = _flat(labelled), np.asarray(labelled.y)
    target_only = _fit_score(Xt, yt, splits.test, score_name, seed)
    source_only = pooled = None
    if source is not None and source.y is not None:
        Xs, ys = source_as_target(source, splits.train.classes)
        if len(np.unique(ys)) >= 2:
            source_only = _fit_score(Xs, ys, splits.test, score_name, seed)
            pooled = _fit_score(np.concatenate([Xs, Xt]), np.concatenate([ys, yt]), splits.test, score_name, seed)
    return Floors(round(target_only, 4), None if source_only is None else round(source_only, 4),
                  None if pooled is None else round(pooled, 4))


def one_nn_accuracy(source: Domain, target: Domain) -> float:
    """1-nearest-neighbour accuracy of source-labelled rows on every target row (the papers' 1NN row)."""
    Xs, ys = source_as_target(source, target.classes)
    Xt = _flat(target)
    d = (Xt**2).sum(1)[:, None] - 2 * Xt @ Xs.T + (Xs**2).sum(1)[None, :]
    return float(np.mean(ys[d.argmin(1)] == target.y))


OFFICE = {"A": "amazon", "C": "caltech", "D": "dslr", "W": "webcam"}
OFFICE_TASKS = ("CA", "CW", "CD", "AC", "AW", "AD", "WC", "WA", "WD", "DC", "DA", "DW")


def one_nn_table(data: str = "../shared/data") -> str:
    """Markdown: our 1NN (source labels only) on the published tasks, after the papers' preprocessing."""
    from .quality import load_file_domain

    rows = ["| task | preprocessing | 1NN accuracy % (ours) |", "|---|---|---|"]
    for t in OFFICE_TASKS:
        s, d = (load_file_domain(f"{data}/office_caltech_surf/{OFFICE[k]}.npz", OFFICE[k], "l1-zscore") for k in t)
        rows.append(f"| {t[0]}→{t[1]} | row / row sum, column z-score per domain | {100 * one_nn_accuracy(s, d):.1f} |")
    for s_name, t_name in (("usps", "mnist"), ("mnist", "usps")):
        s, d = (load_file_domain(f"{data}/mnist_usps_jda/{n}.npz", n, "none") for n in (s_name, t_name))
        s, d = (Domain(x.name, _l2_rows(x), x.y, x.classes, "features", x.origin) for x in (s, d))
        rows.append(f"| {s_name.upper()}→{t_name.upper()} | pixels, each sample L2-normalised | "
                    f"{100 * one_nn_accuracy(s, d):.1f} |")
    return "\n".join(rows) + "\n"


def _l2_rows(d: Domain) -> np.ndarray:
    X = _flat(d)
    return (X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)).astype(np.float32)


if __name__ == "__main__":
    import sys

    table = one_nn_table(sys.argv[1] if len(sys.argv) > 1 else "../shared/data")
    print(table)
