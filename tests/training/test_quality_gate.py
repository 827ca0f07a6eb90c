"""The verdict in words, and --require-beat as a gate that exports nothing on failure."""

from __future__ import annotations

import pytest

from training.pipeline import build_artifact
from training.verdict import FEW_ORIGINS, QualityGateError, judge, require


def _scores(model, **baselines):
    return {
        "model": {"mae": model, "pinball": model, "coverage_80": 0.8},
        "baselines": {n: {"mae": v, "pinball": v} for n, v in baselines.items()},
    }


def test_a_winning_model_is_said_to_beat_the_best_baseline():
    v = judge(_scores(82.0, seasonal_naive_1w=120.0, mstl=100.0), "level")
    assert v["text"] == "model MAE 18% below the best baseline (MSTL)"
    assert v["beats_all"] is True and v["best_baseline"] == "mstl"


def test_a_margin_under_one_percent_is_not_rounded_to_zero():
    v = judge(_scores(0.9991, random_walk=1.2, garch=1.0), "returns")
    assert v["text"] == "model PINBALL 0.1% below the best baseline (GARCH(1,1))"
    v = judge(_scores(1.004, garch=1.0), "returns")
    assert v["text"].startswith("WARNING: model loses to GARCH(1,1) by 0.4% (PINBALL)")


def test_a_losing_model_gets_a_warning_naming_the_period():
    v = judge(_scores(142.0, seasonal_naive_1w=100.0, autoets=300.0), "level")
    assert v["text"] == (
        "WARNING: model loses to seasonal naive 1 week by 42% (MAE); it beats AutoETS"
    )
    assert v["beats_all"] is False and v["loses_to"] == ["seasonal_naive_1w"]


def test_every_baseline_the_model_loses_to_is_named():
    v = judge(_scores(24.28, seasonal_naive_1w=26.1, seasonal_naive_1y=24.26, mstl=21.7), "level")
    assert v["text"] == (
        "WARNING: model loses to MSTL by 12% (MAE), and to seasonal naive 1 year; "
        "it beats seasonal naive 1 week"
    )


def test_a_verdict_on_few_origins_says_the_ranking_is_thin():
    few = {**_scores(82.0, mstl=100.0), "origins": 2}
    v = judge(few, "level")
    assert v["text"] == (
        "model MAE 18% below the best baseline (MSTL); "
        "only 2 test origins: too few to rank the methods with confidence"
    )
    assert v["origins"] == 2
    enough = judge({**_scores(82.0, mstl=100.0), "origins": FEW_ORIGINS}, "level")
    assert enough["text"] == "model MAE 18% below the best baseline (MSTL)"
    alone = judge({**_scores(82.0), "origins": 3}, "level")  # no baselines to rank against
    assert alone["text"].endswith(
        "no baselines; only 3 test origins: too few to rank the methods with confidence"
    )
    assert alone["origins"] == 3


def test_price_models_are_judged_on_pinball():
    v = judge(_scores(7.0, historical_returns=8.0, garch=7.5), "returns")
    assert v["metric"] == "pinball" and "below the best baseline (GARCH(1,1))" in v["text"]


def test_require_names_the_baseline_and_refuses_unknown_ones():
    v = judge(_scores(142.0, seasonal_naive_1w=100.0, autoets=300.0), "level")
    require(v, "autoets", ["seasonal_naive_1w", "autoets"])  # beaten: passes
    with pytest.raises(QualityGateError, match="does not beat seasonal naive 1 week"):
        require(v, "all", ["seasonal_naive_1w", "autoets"])
    with pytest.raises(QualityGateError, match=r"no such baseline.*autoets"):
        require(v, "mstl", ["seasonal_naive_1w", "autoets"])


def test_a_failed_gate_writes_nothing(tiny_sensor, tmp_path):
    with pytest.raises(QualityGateError):
        # A tiny 2-epoch model cannot beat every baseline and a made-up perfect one.
        trained = tiny_sensor
        original = trained.config
        trained.config = original.replace(baselines=("seasonal_naive_1d", "naive"))
        try:
            build_artifact(trained, tmp_path, require_beat="all")
        finally:
            trained.config = original
    assert list(tmp_path.iterdir()) == []


def test_the_verdict_is_in_the_manifest_and_the_report(tiny_sensor, tmp_path):
    directory = build_artifact(tiny_sensor, tmp_path)
    import json

    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["verdict"]["metric"] == "mae"
    assert manifest["verdict"]["text"] in (directory / "report.md").read_text()
    assert [p.name for p in (tmp_path / tiny_sensor.config.name).iterdir()] == ["1"]
