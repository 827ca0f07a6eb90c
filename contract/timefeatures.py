"""Clock arithmetic of the artifact contract: time-derived features and business days.

The one copy of both: training computes the graph's time columns with it, the service
the same columns for each observation (one at a time and over arrays) and its forecast
timestamps, bench its business-day payloads. docs/artifact.md states the rules.
Timestamps are float epoch seconds (UTC).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

DAY_SECONDS = 86400.0
_TWO_PI = 2.0 * math.pi


class TimeColumn(NamedTuple):
    """One time-derived column of the graph's input: fn(2π · (t mod period) / period)."""

    period: float  # seconds
    fn: str  # "sin" or "cos"


def time_feature(t: float, period: float, fn: str) -> float:
    """The column's value at epoch seconds t (float64; the graph gets it as float32)."""
    # Python's % floors like numpy.mod, so negative epochs agree with the array form.
    angle = _TWO_PI * (t % period) / period
    return math.sin(angle) if fn == "sin" else math.cos(angle)


def time_feature_array(t: np.ndarray, period: float, fn: str) -> np.ndarray:
    """time_feature over an array of epoch seconds, float64."""
    angle = _TWO_PI * np.mod(t, period) / period
    return np.sin(angle) if fn == "sin" else np.cos(angle)


def time_features_array(t: np.ndarray, columns: Sequence[TimeColumn]) -> np.ndarray:
    """[N] epoch seconds -> [N, len(columns)] float64, one column per TimeColumn."""
    out = np.empty((len(t), len(columns)), dtype=np.float64)
    for j, (period, fn) in enumerate(columns):
        out[:, j] = time_feature_array(t, period, fn)
    return out


# Business days: Monday to Friday. They are numbered consecutively (ordinal 0 is the
# Monday 1969-12-29); a Saturday or Sunday belongs to the next Monday's ordinal.


def _days_from_monday(t: float) -> int:
    """Days from Monday 1969-12-29 to the UTC day holding t (1970-01-01 was a Thursday)."""
    return math.floor(t / DAY_SECONDS) + 3


def _days_from_monday_array(t: np.ndarray) -> np.ndarray:
    return np.floor(t / DAY_SECONDS).astype(np.int64) + 3


def day_of_week(t: float) -> int:
    """The UTC day of the week holding t: Monday = 0 ... Sunday = 6."""
    return _days_from_monday(t) % 7


def day_of_week_array(t: np.ndarray) -> np.ndarray:
    return _days_from_monday_array(t) % 7


def business_day(t: float) -> int:
    """Business-day ordinal of the day holding t; Sat/Sun count as the next Monday."""
    week, dow = divmod(_days_from_monday(t), 7)
    return week * 5 + min(dow, 5)


def business_day_array(t: np.ndarray) -> np.ndarray:
    """business_day over an array of epoch seconds, int64."""
    week, dow = np.divmod(_days_from_monday_array(t), 7)
    return week * 5 + np.minimum(dow, 5)


def business_day_epoch_day(ordinal: int) -> int:
    """The epoch day (days since 1970-01-01) of a business-day ordinal."""
    week, dow = divmod(ordinal, 5)
    return week * 7 + dow - 3


def add_business_days(t: float, k: int) -> float:
    """k business days after t's, keeping t's time of day (a weekend t counts as Monday)."""
    return business_day_epoch_day(business_day(t) + k) * DAY_SECONDS + (t % DAY_SECONDS)
