"""One copy of the clock arithmetic: scalar, array and training's columns agree with the
rule docs/artifact.md states, computed here independently."""

from __future__ import annotations

import numpy as np
import pandas as pd

from contract.timefeatures import (
    DAY_SECONDS,
    TimeColumn,
    add_business_days,
    business_day,
    business_day_array,
    time_feature,
    time_feature_array,
    time_features_array,
)
from training.data import Series
from training.features import TIME_FEATURES, FeatureLayout, design_matrix

# Negative epochs (before 1970), a weekend, exact period boundaries, a leap day, 2100.
TIMESTAMPS = np.array(
    [
        -2208988800.0,  # 1900-01-01, a Monday
        -86400.5,
        -1.0,
        0.0,
        1401580800.0,  # 2014-06-01, a Sunday
        1401582600.0,
        1404000000.0,  # 2014-06-29T00:00:00Z, a Sunday
        1403913600.0,  # 2014-06-28, a Saturday
        1709164800.0,  # 2024-02-29
        4102444800.0,  # 2100-01-01
    ]
)


def _docs_rule(t: np.ndarray, period: float, fn: str) -> np.ndarray:
    angle = 2 * np.pi * np.mod(t, period) / period
    return (np.sin(angle) if fn == "sin" else np.cos(angle)).astype(np.float32)


def test_scalar_and_array_follow_the_documented_rule() -> None:
    for period in (86400.0, 604800.0, 31556952.0, 1800.0):
        for fn in ("sin", "cos"):
            want = _docs_rule(TIMESTAMPS, period, fn)
            scalar = np.array([time_feature(float(t), period, fn) for t in TIMESTAMPS])
            np.testing.assert_array_equal(scalar.astype(np.float32), want)
            np.testing.assert_array_equal(
                time_feature_array(TIMESTAMPS, period, fn).astype(np.float32), want
            )
    assert time_feature(0.0, 86400, "cos") == 1.0
    columns = [TimeColumn(86400.0, "sin"), TimeColumn(604800.0, "cos")]
    both = time_features_array(TIMESTAMPS, columns)
    assert both.shape == (len(TIMESTAMPS), 2) and both.dtype == np.float64
    np.testing.assert_array_equal(both[:, 1], time_feature_array(TIMESTAMPS, 604800.0, "cos"))


def test_training_columns_are_the_service_columns() -> None:
    seconds = np.floor(TIMESTAMPS)  # training's data are stamped in whole seconds
    index = pd.to_datetime(seconds.astype(np.int64), unit="s")
    frame = pd.DataFrame({"y": np.arange(len(index), dtype=np.float64)}, index=index)
    series = Series("t", "test", frame, "D", "y", ("y",))
    layout = FeatureLayout(("y",), "y", tuple(TIME_FEATURES))
    x = design_matrix(series, layout)
    features = layout.manifest_features()
    assert x.shape == (len(seconds), len(features))
    for col, feature in enumerate(features):
        if feature.source != "time":
            continue
        period, fn = feature.period_seconds, feature.function
        np.testing.assert_array_equal(x[:, col], _docs_rule(seconds, period, fn))
        served = [time_feature(float(t), period, fn) for t in seconds]
        np.testing.assert_array_equal(x[:, col], np.array(served, dtype=np.float32))


def _day(t: float) -> np.datetime64:
    return np.datetime64(int(np.floor(t / DAY_SECONDS)), "D")


def test_business_days_match_numpy_busday() -> None:
    rng = np.random.default_rng(0)
    ts = np.concatenate([TIMESTAMPS, rng.uniform(-4e9, 4e9, 400)])
    ordinals = business_day_array(ts)
    assert ordinals.tolist() == [business_day(float(t)) for t in ts]
    monday = np.busday_offset(_day(float(ts[0])), 0, roll="forward")
    for t, ordinal in zip(ts, ordinals, strict=True):
        rolled = np.busday_offset(_day(float(t)), 0, roll="forward")  # weekend -> Monday
        assert ordinal - ordinals[0] == np.busday_count(monday, rolled)


def test_add_business_days_skips_weekends_and_keeps_the_time_of_day() -> None:
    rng = np.random.default_rng(1)
    for t in [*TIMESTAMPS.tolist(), *rng.uniform(-4e9, 4e9, 200).tolist()]:
        for k in (0, 1, 4, 5, 13):
            day = np.busday_offset(_day(t), k, roll="forward")
            want = day.astype(np.int64) * DAY_SECONDS + t % DAY_SECONDS
            assert add_business_days(t, k) == want
    friday = 1704470400.0 + 16 * 3600  # 2024-01-05T16:00Z
    assert add_business_days(friday, 1) == friday + 3 * DAY_SECONDS
