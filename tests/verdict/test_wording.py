"""The report words the verdict and the gaps in one place (advisor.report.render)."""

from __future__ import annotations

import numpy as np

from advisor.report.render import (
    gap_reason,
    pick_sentence,
    print_report,
    render_markdown,
    tie_sentence,
    verdict_sentence,
)
from advisor.verdict import decide, gaps

Y = np.arange(200) % 4


def _preds(n_seeds: int, wrong: int) -> np.ndarray:
    """``n_seeds`` runs, run r wrong on the first ``wrong + r`` samples (so the seeds spread a little)."""
    out = np.tile(Y, (n_seeds, 1))
    for r in range(n_seeds):
        out[r, : wrong + r] = (Y[: wrong + r] + 1) % 4
    return out


def test_verdict_sentence_says_seeds_interval_and_reference() -> None:
    v = decide("accuracy", Y, "finetune_x", _preds(5, 10), "my_reference", _preds(5, 80), 0.9, 0.6)
    text = verdict_sentence(v)
    assert v.code == "transfer_helps" and text.startswith("Transfer helps: finetune_x")
    assert "5 retrains each" in text and "training seeds and samples" in text and "my_reference" in text
    one = decide("accuracy", Y, "finetune_x", _preds(1, 10), "my_reference", _preds(1, 80), 0.9, 0.6)
    assert one.code == "no_gain" and "does not commit" in verdict_sentence(one) and "samples only" in \
        verdict_sentence(one)


def test_gap_reason_names_the_reference() -> None:
    g = gaps("accuracy", Y, "ref", {"ref": _preds(5, 10), "worse": _preds(5, 90), "same": _preds(5, 10)})
    assert gap_reason(g["worse"], "accuracy").startswith("negative transfer measured: accuracy is 0.400 below ref")
    assert gap_reason(g["same"], "accuracy") is None


def test_markdown_says_what_the_intervals_cover() -> None:
    doc = {"score": "accuracy", "strategies": [], "intervals": {"level": 0.95, "seeds": 5,
                                                                 "covers": "training seeds and samples"}}
    md = render_markdown(doc)
    assert "Intervals: 95%, over training seeds and samples" in md and "5 seed repeats" in md
    assert "whatever the seed" not in md
    row = {"family": "baseline", "status": "complete", "params": {}, "val_score": 0.5, "val_ci": None, "ntg": None,
           "ntg_ci": None, "negative_transfer": False, "risk": "low", "reasons": [], "trials": 1, "budget": 1,
           "errors": []}
    doc["strategies"] = [{**row, "strategy": "target_linear", "deterministic": True},
                         {**row, "strategy": "finetune", "deterministic": False}]
    md = render_markdown(doc)
    assert "target_linear fits the same model whatever the seed: one fit stands for every seed" in md


def _tie_doc(tie_broken: bool | None) -> dict:
    row = {"family": "model", "status": "complete", "params": {}, "val_ci": None, "ntg": None, "ntg_ci": None,
           "negative_transfer": False, "risk": "low", "reasons": [], "trials": 1, "budget": 1, "errors": []}
    rec = {"strategy": "probe", "family": "model", "params": {}, "test_score": 0.8, "test_accuracy": 0.8,
           "test_gain": 0.02, "test_gain_ci": [-0.01, 0.05], "verdict": "Transfer gives little or nothing.",
           "verdict_code": "no_gain", "best_transfer_strategy": "probe", "reference": "target_only"}
    if tie_broken is not None:
        rec["tie_broken"] = tie_broken
    return {"score": "accuracy", "recommendation": rec, "strategies": [
        {**row, "strategy": "target_only", "role": "reference", "val_score": 0.9},
        {**row, "strategy": "tuned", "role": "transfer", "val_score": 0.805},
        {**row, "strategy": "probe", "role": "probe", "val_score": 0.8}]}


def test_the_tie_rule_is_said_only_when_it_decided() -> None:
    from rich.console import Console

    text = tie_sentence(_tie_doc(True))
    assert text.startswith("Tie rule: probe was chosen") and "tuned scores higher" in text
    assert "(0.805 against 0.800)" in text and "target_only" not in text  # the reference is no rival
    assert text in render_markdown(_tie_doc(True))
    console = Console(record=True, width=400)
    print_report(_tie_doc(True), console)
    assert "Tie rule: probe was chosen" in console.export_text()
    banded = _tie_doc(True)
    banded["recommendation"]["tie_band"] = 0.031
    assert "scores less than 0.031 (one standard error" in tie_sentence(banded)
    assert "less than one validation sample" in text  # a report without the band keeps the old wording
    for quiet in (False, None):  # a top score that won, and an old report without the field
        assert tie_sentence(_tie_doc(quiet)) == "" and "Tie rule" not in render_markdown(_tie_doc(quiet))


def test_a_cross_validated_pick_is_said_with_its_scores_size_and_candidates() -> None:
    from rich.console import Console

    doc = _tie_doc(False)
    doc["recommendation"]["selected_by"] = {"b": "crossval", "reference": "crossval", "crossval_folds": 3,
                                            "crossval_rows": 130}
    cv = {"target_only": 0.55, "tuned": 0.6, "probe": 0.62}
    for r in doc["strategies"]:
        r["cv_score"] = cv[r["strategy"]]
    text = pick_sentence(doc)
    assert text.startswith("B and the reference were picked by 3-fold cross-validation on train+val (130 rows")
    assert "probe 0.620, target_only 0.550, tuned 0.600" in text and "won a tie" not in text
    md = render_markdown(doc)
    assert text in md and "| CV train+val |" in md and "| 0.620 |" in md
    console = Console(record=True, width=400)
    print_report(doc, console)
    assert "picked by 3-fold cross-validation" in console.export_text()
    doc["recommendation"].update(tie_broken=True, tie_band=1 / 130)
    assert "probe won a tie (within one row, 0.008) by the quick advice's order" in pick_sentence(doc)
    doc["recommendation"]["selected_by"]["b"] = "validation"  # the fallback keeps the validation tie sentence
    assert pick_sentence(doc).startswith("Tie rule: probe was chosen")


def test_a_no_gain_choice_says_its_basis_and_margin() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    same = np.stack([np.where(rng.random(300) < 0.8, y, 1 - y) for _ in range(5)])
    other = np.stack([np.where(rng.random(300) < 0.8, y, 1 - y) for _ in range(5)])
    ref = decide("accuracy", y, "fa", same, "target_only", other, 0.932, 0.923, margin=0.012,
                 basis="cross-validation on train+val")
    assert ref.code == "no_gain" and ref.chosen == "target_only"
    assert verdict_sentence(ref).endswith(
        "fa does not lead target_only on cross-validation on train+val by more than one standard error (0.012), so "
        "the model that needs no source, target_only, is recommended.")
    b = decide("accuracy", y, "fa", same, "target_only", other, 0.95, 0.923, margin=0.012,
               basis="cross-validation on train+val")
    assert verdict_sentence(b).endswith("fa leads on cross-validation on train+val by more than one standard error "
                                        "(0.012), so it is recommended.")
    plain = decide("accuracy", y, "fa", same, "target_only", other, 0.95, 0.923)
    assert verdict_sentence(plain).endswith("fa is the better of the two on validation.")
