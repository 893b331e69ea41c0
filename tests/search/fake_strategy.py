"""A strategy that 'trains' instantly (or slowly, on request), and a process that searches with it.

``python -m tests.search.fake_strategy STORAGE BUDGET [--delay S] [--hang FILE]`` runs the search of
the fake strategy on STORAGE in a process of its own: two of them on one storage are two workers;
``--hang FILE`` writes FILE when its first fit starts and then sleeps (a process to kill mid-trial).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from advisor.data.domain import Domain
from advisor.plugin.contracts import FitResult, Needs, TransferTask


class Fake:
    """Its score is a smooth function of lam; ``delay`` seconds per fit."""

    name = "fake"
    family = "model"
    role = "transfer"
    description = "fake"
    needs = Needs()

    def __init__(self, fail_always: bool = False, delay: float = 0.0, hang: str | None = None) -> None:
        self.fail_always = fail_always
        self.delay = delay
        self.hang = hang
        self.calls = 0

    def default_params(self, task):
        return {"lam": 1.0}

    def search_space(self, trial, task):
        return {"lam": trial.suggest_float("lam", 0.01, 10, log=True)}

    def fit(self, task, params, report):
        self.calls += 1
        if self.hang:
            Path(self.hang).write_text("fitting")
            time.sleep(600)
        if self.fail_always:
            raise RuntimeError("boom")
        time.sleep(self.delay)
        score = float(1 / (1 + abs(np.log(params["lam"]))))
        for epoch in range(3):
            if report:
                report(epoch, score * (epoch + 1) / 3)
        return FitResult(model=None, val_score=score, val_pred=np.zeros(4, dtype=np.int64), epochs=3)

    def risks(self, signals, task):
        return []


def fake_task() -> TransferTask:
    d = Domain("t", np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1]), ("a", "b"), "features")
    return TransferTask(source=None, target_train=d, target_val=d, backbone=None)  # type: ignore[arg-type]


def main() -> None:
    from advisor.runs.storage import open_storage
    from advisor.search.study import SearchState, make_study, raise_budget, run_search

    parser = argparse.ArgumentParser()
    parser.add_argument("storage")
    parser.add_argument("budget", type=int)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--hang", default=None)
    args = parser.parse_args()
    fake, task = Fake(delay=args.delay, hang=args.hang), fake_task()
    study = make_study(open_storage(args.storage), "run", fake, task, seed=0)
    run_search([SearchState(fake, study, raise_budget(study, args.budget))], task)


if __name__ == "__main__":
    main()
