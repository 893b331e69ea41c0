"""Verdict: pure functions from per-seed predictions to the reference, B, the gaps and the decision.

No training and no Optuna here: the pipeline runs the seeds, these functions judge them, the report words them.
"""

from advisor.verdict.rules import (
    LOOK_LEVEL,
    REFERENCE_ROLE,
    VERDICT_CODES,
    Gap,
    Verdict,
    choose_reference,
    choose_transfer,
    decide,
    gaps,
    mean_scores,
    pick_best,
    tie_band,
    tie_decided,
    transfer_tie_broken,
    worth_another_look,
)

__all__ = ["LOOK_LEVEL", "REFERENCE_ROLE", "VERDICT_CODES", "Gap", "Verdict", "choose_reference", "choose_transfer",
           "decide", "gaps", "mean_scores", "pick_best", "tie_band",
           "tie_decided", "transfer_tie_broken", "worth_another_look"]
