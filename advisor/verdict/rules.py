"""The verdict rule (DESIGN.md §5) as pure functions on per-seed predictions.

Steps, in the order the pipeline calls them: the seed-repeat mean of every strategy
(``mean_scores``) -> the reference, the best reference-role candidate (``choose_reference``) ->
the negative-transfer gap of every other strategy against it (``gaps``) -> B, the best
non-reference strategy (``choose_transfer``) -> the decision on the test split (``decide``, looked at
a second time with twice the retrains when ``worth_another_look``).
Every interval carries training seeds and samples (``advisor.search.scoring.seed_sample_diff``);
a code other than ``no_gain`` needs an interval that clears zero with both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from advisor.search.scoring import Estimate, seed_sample_diff, seed_sample_se, seed_scores

REFERENCE_ROLE = "reference"
#: The verdict looks at the test gain at most twice (group-sequential, equal seed increments): first with
#: ``n_seeds`` retrains per arm and, when that look did not commit but the gain is promising
#: (``worth_another_look``), again with twice as many. Each look uses this two-sided level: Pocock's
#: boundary for two looks at an overall 5% is 0.0294 per look, rounded here to 0.03, so a strategy
#: compared with itself is called different at most about 5% of the time over both looks
#: (measured: ``bench/calibration.py``).
LOOK_LEVEL = 0.97
VERDICT_CODES = ("transfer_helps", "no_gain", "transfer_hurts")
VerdictCode = Literal["transfer_helps", "no_gain", "transfer_hurts"]


def mean_scores(score_name: str, y: np.ndarray, preds: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Each strategy's score averaged over its seeds (``preds[name]``: seeds x n, on the samples ``y``)."""
    return {name: float(seed_scores(score_name, y, p).mean()) for name, p in preds.items()}


def pick_best(means: Mapping[str, float], prior_order: Sequence[str], n_val: int, band: float = 0.0) -> str | None:
    """The name with the best mean; means within the tie band of the top are tied.

    The band is ``band`` (the pipeline passes one standard error of the leader's validation score, seeds and
    samples: ``tie_band``), never less than one validation sample (``1 / n_val``, a single flipped prediction).
    A gap inside it is not evidence that one strategy is better, so tied names go to the one ranked higher in
    ``prior_order`` (the quick advice: what past tasks say), then to the better mean, then to the alphabet:
    the one-standard-error rule with the prior in place of "the simplest model". ``None`` when ``means`` is
    empty.
    """
    if not means:
        return None
    top = max(means.values())
    width = max(band, 1.0 / max(n_val, 1))
    tied = [name for name, m in means.items() if m > top - width + 1e-12]
    rank = {name: i for i, name in enumerate(prior_order)}
    return min(tied, key=lambda name: (rank.get(name, len(rank)), -means[name], name))


def tie_band(score_name: str, y: np.ndarray, preds: Mapping[str, np.ndarray], candidates: Sequence[str],
             seed: int = 0) -> float:
    """One standard error (seeds and samples) of the validation score of the leader among ``candidates``.

    On a small validation split the strategies' means differ by less than their noise, and the search picked
    each strategy's setting on that same split, so the top mean is biased upwards (the winner's curse). Ties
    within one standard error go to the prior (``pick_best``). 0.0 without candidates.
    """
    scored = [c for c in candidates if c in preds]
    if not scored:
        return 0.0
    means = mean_scores(score_name, y, {c: preds[c] for c in scored})
    leader = max(scored, key=lambda c: (means[c], c))
    return seed_sample_se(score_name, y, preds[leader], seed=seed)


def tie_decided(means: Mapping[str, float], chosen: str | None) -> bool:
    """Whether ``chosen`` (``pick_best`` on these ``means``) won a tie rather than the top score.

    True when another name scores at least as high: the pick was decided by the tie rule (the
    quick advice's order, then the alphabet), which a report must say to explain its ranking.
    """
    if chosen is None or chosen not in means:
        return False
    return any(m >= means[chosen] for name, m in means.items() if name != chosen)


def choose_reference(means: Mapping[str, float], roles: Mapping[str, str], prior_order: Sequence[str],
                     n_val: int, band: float = 0.0) -> str | None:
    """The reference of the gaps and the verdict: the best reference-role candidate by its seed-repeat mean."""
    return pick_best(_reference_means(means, roles), prior_order, n_val, band)


def choose_transfer(means: Mapping[str, float], roles: Mapping[str, str], prior_order: Sequence[str],
                    n_val: int, band: float = 0.0) -> str | None:
    """B, the strategy the verdict tests: the best non-reference strategy by its seed-repeat mean."""
    return pick_best(_transfer_means(means, roles), prior_order, n_val, band)


def transfer_tie_broken(means: Mapping[str, float], roles: Mapping[str, str], chosen: str | None) -> bool:
    """Whether B (``choose_transfer``'s pick) won a tie among the non-reference strategies (``tie_decided``)."""
    return tie_decided(_transfer_means(means, roles), chosen)


def _transfer_means(means: Mapping[str, float], roles: Mapping[str, str]) -> dict[str, float]:
    return {k: v for k, v in means.items() if roles.get(k) != REFERENCE_ROLE}


def _reference_means(means: Mapping[str, float], roles: Mapping[str, str]) -> dict[str, float]:
    return {k: v for k, v in means.items() if roles.get(k) == REFERENCE_ROLE}


@dataclass(frozen=True)
class Gap:
    """The negative-transfer gap of ``strategy``: NTG = score(reference) - score(strategy) on validation."""

    strategy: str
    reference: str
    estimate: Estimate

    @property
    def negative_transfer(self) -> bool:
        """The reference is better with both seeds and samples accounted for."""
        return self.estimate.above_zero

    @property
    def reference_ahead(self) -> bool:
        """The reference scores higher, but not clearly: no evidence that the strategy gains anything."""
        return not self.negative_transfer and self.estimate.value > 0 and self.estimate.hi > 0


def gaps(score_name: str, y_val: np.ndarray, reference: str, preds: Mapping[str, np.ndarray],
         roles: Mapping[str, str] | None = None, seed: int = 0) -> dict[str, Gap]:
    """The gap of every strategy in ``preds`` from their validation seed repeats.

    Not for the reference itself, nor for the other reference candidates when ``roles`` is given:
    they transfer nothing, so a gap would not be negative transfer.
    """
    ref = preds[reference]
    roles = roles or {}
    return {name: Gap(name, reference, seed_sample_diff(score_name, y_val, ref, p, seed=seed))
            for name, p in preds.items() if name != reference and roles.get(name) != REFERENCE_ROLE}


@dataclass(frozen=True)
class Verdict:
    """The decision on the test split: B against the reference, both retrained with several seeds.

    ``gain`` is score(B) - score(reference), each the mean of its retrains, with an interval over
    seeds and samples; ``chosen`` is the strategy to use.
    """

    code: VerdictCode
    chosen: str
    best_transfer: str
    reference: str
    gain: Estimate
    transfer_test: float
    reference_test: float
    score: str
    test_size: int
    looks: int = 1
    basis: str = "validation"  # what B and the reference were picked on (and a no_gain decided by)
    margin: float = 0.0  # how far B had to lead the reference there to be chosen under no_gain


def worth_another_look(v: Verdict) -> bool:
    """Whether a first look that did not commit deserves twice the retrains.

    Only a ``no_gain`` with seed variance in its interval, whose gain is at least an eighth of the
    interval's width away from zero: a gain nearer zero would not clear it with twice the seeds either,
    and its retrains would be spent for nothing.
    """
    g = v.gain
    return v.code == "no_gain" and v.looks == 1 and g.with_seeds and abs(g.value) >= (g.hi - g.lo) / 8


def decide(score_name: str, y_test: np.ndarray, best_transfer: str, transfer_preds: np.ndarray, reference: str,
           reference_preds: np.ndarray, transfer_val: float, reference_val: float, seed: int = 0,
           looks: int = 1, level: float = LOOK_LEVEL, margin: float = 0.0, basis: str = "validation") -> Verdict:
    """``transfer_helps`` when the gain's interval lies above zero, ``transfer_hurts`` below, else ``no_gain``.

    ``*_preds``: test predictions of each retrain (seeds x n). An interval that covers samples only
    (one seed in an arm) never commits. Under ``no_gain`` B is chosen only when it leads the reference by
    more than ``margin`` on the scores both were picked by (``*_val``, described by ``basis``: cross-validated
    on train+val, with one standard error of their paired difference as the margin; or seed-repeat means on
    validation), else the reference: without a measured gain, the model that needs no source. ``looks``: which
    look at the test gain this is (see ``LOOK_LEVEL``); ``level``: the interval's two-sided level.
    """
    gain = seed_sample_diff(score_name, y_test, transfer_preds, reference_preds, level=level, seed=seed)
    code: VerdictCode
    if gain.above_zero:
        code, chosen = "transfer_helps", best_transfer
    elif gain.below_zero:
        code, chosen = "transfer_hurts", reference
    else:
        code, chosen = "no_gain", best_transfer if transfer_val > reference_val + margin else reference
    return Verdict(code, chosen, best_transfer, reference, gain,
                   float(seed_scores(score_name, y_test, transfer_preds).mean()),
                   float(seed_scores(score_name, y_test, reference_preds).mean()), score_name, len(y_test),
                   looks, basis, margin)
