"""Step arithmetic of fixed-seconds and business-day models."""

from __future__ import annotations

import math

import numpy as np

from service.engine.calendar import Calendar
from service.protocol.timestamps import MAX_TS, parse_ts


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


def test_weekly_models_step_by_seven_days_from_the_last_reading() -> None:
    # pandas names weekly data "W-SUN"; the manifest gives its step as 7 days of seconds.
    cal = Calendar("W-SUN", 7 * 86400, 2)
    sunday = parse_ts("2024-01-07")
    assert cal.forecast_ts(sunday) == ["2024-01-14T00:00:00Z", "2024-01-21T00:00:00Z"]
    assert cal.steps_between(sunday, parse_ts("2024-01-14")) == 1
    assert cal.steps_between(sunday, parse_ts("2024-01-28")) == 3  # two weeks skipped


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


def test_steps_array_agrees_with_steps_between() -> None:
    rng = np.random.default_rng(3)
    earlier = rng.uniform(-3e8, 3e9, 500)
    later = earlier + rng.uniform(1.0, 30 * 86400.0, 500)
    for cal in (Calendar("B", 86400, 5), Calendar("30min", 1800, 5)):
        want = [cal.steps_between(float(a), float(b)) for a, b in zip(earlier, later, strict=True)]
        assert cal.steps_array(earlier, later).tolist() == want


def test_last_ts_ok_is_exact_at_the_end_of_time() -> None:
    for cal in (Calendar("B", 86400, 5), Calendar("30min", 1800, 48)):
        assert cal.last_ts_ok(cal.max_ts)
        late = MAX_TS - 86400.0
        assert cal.last_ts_ok(late) == (cal.step_ts(late, cal.horizon) <= MAX_TS)


def test_weekends_are_named_only_for_business_day_models() -> None:
    business, fixed = Calendar("B", 86400, 5), Calendar("D", 86400, 7)
    days = [parse_ts(f"2024-01-{d:02d}T12:00:00") for d in range(1, 15)]  # Mon 1st..Sun 14th
    named = [business.weekend(t) for t in days]
    assert named == ([None] * 5 + ["Saturday", "Sunday"]) * 2
    assert business.weekend_array(np.array(days)).tolist() == [n is not None for n in named]
    assert (
        all(fixed.weekend(t) is None for t in days)
        and not fixed.weekend_array(np.array(days)).any()
    )
    assert business.weekend(parse_ts("1969-12-28")) == "Sunday"  # before the epoch too
