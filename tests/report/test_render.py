"""Wording helpers of the report (advisor.report.render)."""

from __future__ import annotations

from advisor.report.render import _params, retrain_line


def test_parameters_shown_leave_out_bookkeeping() -> None:
    """``train_rows`` (the rows one search epoch covered) is not a setting: the report does not show it."""
    shown = _params({"lr": 0.001, "epochs": 12, "train_rows": 30})
    assert shown.startswith("lr=0.001") and "epochs=12" in shown and "train_rows" not in shown
    assert _params({"train_rows": 30}) == "-"


def test_a_second_look_is_said_as_such() -> None:
    first = retrain_line({"strategy": "finetune", "reference": "target_only"})
    second = retrain_line({"strategy": "finetune", "reference": "target_only", "look": 2})
    assert first.startswith("retraining finetune and target_only") and second.startswith("second look")
