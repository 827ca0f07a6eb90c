from __future__ import annotations

import math

import numpy as np
import pytest

from service.features import Calendar, format_ts, parse_ts, time_feature


def test_parse_ts_forms() -> None:
    assert parse_ts("2014-06-01T00:00:00Z") == parse_ts("2014-06-01T00:00:00") == 1401580800.0
    assert parse_ts("2014-06-01T02:00:00+02:00") == 1401580800.0
    assert parse_ts(1401580800) == 1401580800.0
    for bad in ("soon", True, None, [1], float("nan"), 1e20):
        with pytest.raises(ValueError):
            parse_ts(bad)


def test_format_roundtrip() -> None:
    assert format_ts(1401580800.0) == "2014-06-01T00:00:00Z"
    assert parse_ts(format_ts(1401580800.25)) == 1401580800.25


def test_time_feature_matches_the_contract_formula() -> None:
    t = np.array([-86400.5, 0.0, 1401580800.0, 1401582600.0])
    for period in (86400.0, 604800.0):
        expected = np.sin(2 * np.pi * np.mod(t, period) / period).astype(np.float32)
        got = np.array([time_feature(v, period, "sin") for v in t], dtype=np.float32)
        np.testing.assert_array_equal(got, expected)
    assert time_feature(0.0, 86400, "cos") == 1.0


def test_fixed_frequency_steps_and_forecast_ts() -> None:
    cal = Calendar("30min", 1800, 3)
    t = parse_ts("2014-06-01T23:30:00Z")
    assert cal.forecast_ts(t) == [
        "2014-06-02T00:00:00Z",
        "2014-06-02T00:30:00Z",
        "2014-06-02T01:00:00Z",
    ]
    assert cal.steps_between(t, t + 1800) == 1
    assert cal.steps_between(t, t + 3 * 1800) == 3
    assert cal.steps_between(t, t + 600) == 1  # less than a period is the next period


def test_business_days() -> None:
    cal = Calendar("B", 86400, 4)
    fri = parse_ts("2024-01-05T16:00:00")
    assert cal.forecast_ts(fri) == [
        "2024-01-08T16:00:00Z",
        "2024-01-09T16:00:00Z",
        "2024-01-10T16:00:00Z",
        "2024-01-11T16:00:00Z",
    ]
    assert cal.steps_between(fri, parse_ts("2024-01-08T16:00:00")) == 1
    assert cal.steps_between(fri, parse_ts("2024-01-10T16:00:00")) == 3
    assert cal.steps_between(parse_ts("1969-12-31"), parse_ts("1970-01-01")) == 1
    assert math.isclose(cal.step_ts(fri, 5), parse_ts("2024-01-12T16:00:00"))
