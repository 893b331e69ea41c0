"""bench.bench_load's table: ratios to the same policy's time alone, stopped runs as lower bounds."""

from __future__ import annotations

from bench.bench_load import Measure, markdown


def test_table_gives_ratios_to_the_time_alone_and_marks_stopped_runs():
    ms = [Measure("before", 0, 50.0, True, "--threads 2"), Measure("before", 3, 300.0, False, "--threads 2"),
          Measure("after", 0, 40.0, True, "default"), Measure("after", 3, 120.0, True, "default")]
    md = markdown(ms, ["--trials", "1"], 300.0)
    assert "| before | 3 | --threads 2 | > 300 (stopped) | > 6.00 |" in md
    assert "| after | 3 | default | 120.0 | 3.00 |" in md
    assert "| after | 0 | default | 40.0 | 1.00 |" in md
