"""The pick-rule replay's summary (bench.crossval_pick): regrets, gains and signs against the oracle."""

from __future__ import annotations

import json
from pathlib import Path

from bench.crossval_pick import RULES, _oracle_codes, _run_key, summarize


def _run(scenario: str, split: int, picks: dict[str, tuple[str, str]]) -> dict:
    rows = {"a": {"role": "transfer", "test": 0.60}, "b": {"role": "transfer", "test": 0.50},
            "lin": {"role": "reference", "test": 0.58}, "mlp": {"role": "reference", "test": 0.45}}
    full = {rule: {"b": picks.get(rule, ("a", "lin"))[0], "reference": picks.get(rule, ("a", "lin"))[1]}
            for rule in RULES}
    return {"run": scenario, "scenario": scenario, "split": split, "rows": rows, "picks": full}


def test_summary_counts_regret_gain_and_opposite_signs() -> None:
    runs = [_run("s", 0, {"val": ("b", "lin")}), _run("s", 1, {"val": ("b", "mlp")})]
    oracle = {("s", 0): "transfer_helps", ("s", 1): "no_gain"}
    out = summarize(runs, oracle)
    val, cv = out["val"], out["cv_all"]
    assert val["b_regret_points"] == 10.0 and val["reference_regret_points"] == 6.5  # (0 + 13) / 2
    assert val["mean_gain_points"] == (-8.0 + 5.0) / 2
    # split 0: b under lin by 8 points where the oracle says transfer helps -> opposite; split 1: +5 vs no_gain
    assert val["opposite_sign"] == 1 and val["sign_agrees_with_oracle"] == "0/2"
    # a vs lin: +2 points, "no gain" to the replay: it disagrees with split 0's transfer_helps, agrees with split 1
    assert cv["b_regret_points"] == 0.0 and cv["opposite_sign"] == 0 and cv["sign_agrees_with_oracle"] == "1/2"


def test_run_folders_and_oracle_codes_are_read_from_a_harness_folder(tmp_path: Path) -> None:
    assert _run_key(tmp_path / "office-a-b-3") == ("office-a-b-3", 0)
    assert _run_key(tmp_path / "office-a-b-3-split2") == ("office-a-b-3", 2)
    (tmp_path / "office-a-b-3.json").write_text(json.dumps({"splits": [
        {"split": 0, "oracle": {"verdict_code": "no_gain"}},
        {"split": 2, "oracle": {"verdict_code": "transfer_hurts"}}]}))
    (tmp_path / "quality.json").write_text(json.dumps({"splits": {"summary": 1}}))  # a summary file is skipped
    assert _oracle_codes(tmp_path) == {("office-a-b-3", 0): "no_gain", ("office-a-b-3", 2): "transfer_hurts"}
