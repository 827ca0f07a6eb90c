"""The accuracy suite, tiny: real cases with a tiny network, one table with a verdict."""

from __future__ import annotations

import json

from training.suite import CASES, run


def test_the_suite_writes_one_table_with_a_verdict_per_series(tmp_path):
    results = run(["pedestrian", "msft"], tmp_path, quick=True)
    table = (tmp_path / "suite.md").read_text()
    assert table.startswith("| series | kind |")
    for name, metric in (("pedestrian", "MAE"), ("msft", "PINBALL")):
        row = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert f"| {metric} |" in row
        assert "below the best baseline" in row or "WARNING" in row
    pedestrian = results[0]
    assert pedestrian["fill"] == "interpolate:2"  # the data has DST gaps: --fill is needed
    assert "seasonal_naive_1d" in pedestrian["baselines"]
    assert "garch" in results[1]["baselines"]
    assert json.loads((tmp_path / "suite.json").read_text())[1]["case"] == "msft"


def test_the_suite_covers_kinds_and_frequencies():
    frequencies = {CASES[c].series().frequency for c in ("fr-load", "warsaw-pm25", "msft")}
    assert frequencies == {"h", "D", "B"}
    assert len(CASES) >= 5
