"""Fast tests of the calibration bench's counting rules on synthetic per-seed predictions."""

from __future__ import annotations

import numpy as np

from bench.calibration import Cell, clopper_pearson, markdown, null_comparisons, oracle_sign, power_cases, summarize

K = 10


def _runs(rng: np.random.Generator, y: np.ndarray, n: int, skill: float) -> np.ndarray:
    """``n`` training runs: per-run luck shifts every sample's log-odds of being right."""
    out = []
    for _ in range(n):
        p = 1 / (1 + np.exp(-(skill + rng.normal(0.0, 0.35))))
        out.append(np.where(rng.random(len(y)) < p, y, (y + 1) % K))
    return np.stack(out)


def test_clopper_pearson() -> None:
    lo, hi = clopper_pearson(5, 100)
    assert 0.016 < lo < 0.017 and 0.112 < hi < 0.113  # the textbook values for 5/100
    assert clopper_pearson(0, 10)[0] == 0.0 and clopper_pearson(10, 10)[1] == 1.0


def test_null_comparisons_count_rare_false_alarms() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, K, 300)
    n, k, old, second = null_comparisons("accuracy", y, _runs(rng, y, 22, 1.0), 20, rng)
    assert n == 20 and k <= 3 and old > k
    assert 0 < second < 20  # some comparisons look twice, not all


def test_power_cases_follow_the_oracle_sign() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, K, 300)
    good, base = _runs(rng, y, 22, 2.0), _runs(rng, y, 22, 0.5)
    assert oracle_sign("accuracy", y, good[:12], base[:12]) == 1
    assert power_cases("accuracy", y, good, base, 4, rng) == (1, 4, 4)
    assert power_cases("accuracy", y, base, good, 4, rng) == (-1, 4, 4)
    assert power_cases("accuracy", y, base, base, 4, rng)[:2] == (0, 0)  # no gain: not a power case


def test_summary_and_markdown() -> None:
    cells = [Cell("s", 0, {}, {}, comparisons=60, false_alarms=3, samples_only_false_alarms=30, second_looks=7,
                  power_cases=6, power_right=5), Cell("t", 0, {}, {}, comparisons=60, false_alarms=1)]
    s = summarize(cells)
    assert (s["comparisons"], s["false_alarms"], s["power"], s["cells"]) == (120, 4, round(5 / 6, 4), 2)
    assert "4/120" in markdown(s) and "5/6" in markdown(s) and "7/120" in markdown(s)


def test_merge_joins_the_halves_and_their_predictions(tmp_path) -> None:
    """Two processes' halves become one result file, and their per-seed predictions one replayable file."""
    import json
    from dataclasses import asdict

    from bench.calibration import main, preds_path

    halves = []
    for name in ("a", "b"):
        cell = Cell(name, 0, {}, {"finetune": [0.5], "target_only": [0.4]}, comparisons=12, false_alarms=1)
        f = tmp_path / f"{name}.json"
        f.write_text(json.dumps({"date": "2026-12-02 19:00", "seconds": 10.0, "seeds_per_cell": 22, "rules": {},
                                 "per_cell": [asdict(cell)]}))
        np.savez_compressed(preds_path(f), **{f"{name}/0/y": np.arange(3), f"{name}/0/finetune": np.ones((2, 3))})
        halves.append(str(f))
    out = tmp_path / "calibration.json"
    assert main(["--merge", *halves, "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["comparisons"] == 24 and doc["false_alarms"] == 2 and doc["seconds"] == 20.0
    with np.load(preds_path(out)) as z:
        assert sorted(z.files) == ["a/0/finetune", "a/0/y", "b/0/finetune", "b/0/y"]
        assert z["b/0/finetune"].shape == (2, 3)
