"""The offline replay of pick rules: the one-standard-error band and its use of the prior."""

from __future__ import annotations

from bench.selection_rule import pick, replay


def test_pick_ties_within_the_band_go_to_the_prior() -> None:
    val = {"a": 0.62, "b": 0.60, "c": 0.40}
    prior = {"b": 1.0, "a": 0.0, "c": 2.0}
    assert pick(val, prior, n_val=1000, k=0.0) == "a"  # no band: the top score
    assert pick(val, prior, n_val=60, k=1.0) == "b"  # SE about 0.063: a and b tie, c does not
    assert pick(val, prior, n_val=60, k=5.0) == "c"


def _record(rid: str, target: str, scores: dict[str, tuple[float, float]]) -> dict:
    return {"id": rid, "schema": 1, "origin": "harness-oracle", "evidence": {"x": float(len(rid))},
            "sizes": {"target_val": 60, "labels_per_class": 3},
            "domains": {"source": {"name": "s" + target}, "target": {"name": target}},
            "strategies": {k: {"val_score": v, "test_score": t} for k, (v, t) in scores.items()}}


def test_replay_scores_every_rule_leave_one_domain_out() -> None:
    recs = [_record(f"r{i}", f"d{i % 4}", {"lin": (0.60, 0.70), "net": (0.62, 0.55)}) for i in range(8)]
    doc = replay(recs)
    assert doc["records"] == 8
    s = doc["summary"]
    # the network tops validation by 2 points but loses 15 on test; past records say the linear model wins
    assert s["band_0_se"]["mean"] == 15.0 and s["band_1_se"]["mean"] == 0.0 and s["advice_only"]["mean"] == 0.0
