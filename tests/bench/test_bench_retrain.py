"""The retrain-schedule bench's arithmetic and table (the fits themselves run in the bench)."""

from __future__ import annotations

from bench.bench_retrain import markdown, steps_kept_epochs


def test_steps_kept_scales_the_epochs_by_the_steps_of_one_pass() -> None:
    assert steps_kept_epochs(24, 30, 90, 8) == 8  # 24 x 4 steps = 96 = 8 passes of 12 steps
    assert steps_kept_epochs(5, 30, 130, 8) == 1  # 20 steps, one pass is 17
    assert steps_kept_epochs(1, 30, 1000, 8) == 1  # never fewer than one pass
    assert steps_kept_epochs(10, 100, 100, 8) == 10  # same rows: same epochs


def test_markdown_summarises_the_differences() -> None:
    rows = [{"scenario": "s", "strategy": a, "n_train": 30, "n_full": 130, "batch_size": 8,
             "epochs": {"epochs_kept": 8, "steps_kept": 2}, "test_accuracy": {"epochs_kept": 0.6, "steps_kept": 0.5},
             "epochs_minus_steps_points": d} for a, d in (("x", 10.0), ("y", -2.0))]
    md = markdown(rows, 3, 12.0)
    assert "**+4.00 points**" in md and "ahead in 1 of 2" in md and "| s | y | 30 → 130 | 8 / 2 |" in md
