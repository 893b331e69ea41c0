"""The report words the verdict and the gaps in one place (advisor.report.render)."""

from __future__ import annotations

import numpy as np

from advisor.report.render import gap_reason, render_markdown, verdict_sentence
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
