"""Step arithmetic of a model's frequency: periods between timestamps, forecast timestamps.

Fixed-seconds frequencies step by frequency_seconds; "B" steps by business days, whose
arithmetic is the contract's (contract.timefeatures).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import orjson

from contract.timefeatures import (
    DAY_SECONDS,
    add_business_days,
    business_day,
    business_day_array,
    day_of_week,
    day_of_week_array,
)
from service.protocol.timestamps import MAX_TS, format_ts

WEEKEND = {5: "Saturday", 6: "Sunday"}  # day of the week, Monday = 0


class Calendar:
    """Step arithmetic of one model's frequency (fixed seconds, or business days)."""

    def __init__(self, frequency: str, frequency_seconds: float, horizon: int) -> None:
        self.business = frequency == "B"
        self.seconds = float(frequency_seconds)
        self.horizon = horizon
        # The horizon's offsets from the last ts, computed once (fixed-seconds calendars).
        self._offsets = [k * self.seconds for k in range(1, horizon + 1)]
        # The latest ts whose whole forecast horizon stays formattable (<= 9999-12-31).
        # Exact for fixed seconds; for business days a cheap conservative bound (a
        # week holds 5 business days, plus a weekend of slack) that routes the few
        # later ts to the exact check (last_ts_ok).
        if self.business:
            self.max_ts = MAX_TS - ((horizon // 5 + 1) * 7 + 3) * DAY_SECONDS
        else:
            self.max_ts = MAX_TS - horizon * self.seconds
        # Many streams report the same tick, so formatted timestamps are cached.
        self.forecast_ts = lru_cache(maxsize=4096)(self._forecast_ts_uncached)
        # The same list pre-serialised, for responses that carry it many times.
        self.forecast_ts_json = lru_cache(maxsize=4096)(self._forecast_ts_fragment)

    def steps_between(self, earlier: float, later: float) -> int:
        """Periods from earlier to later (>= 1 when later > earlier).

        A point less than a period after the last one counts as the next period,
        so sloppy client clocks do not look like duplicates.
        """
        if self.business:
            steps = business_day(later) - business_day(earlier)
        else:
            steps = round((later - earlier) / self.seconds)
        return max(1, steps)

    def steps_array(self, earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
        """steps_between over arrays (the multi-stream lane)."""
        if self.business:
            steps = business_day_array(later) - business_day_array(earlier)
        else:
            steps = np.rint((later - earlier) / self.seconds).astype(np.int64)
        return np.maximum(steps, 1)

    def weekend(self, t: float) -> str | None:
        """The day's name when a business-day model is given a Saturday or Sunday (its
        data has none: a weekend date is a client's slip, or a local midnight east of
        UTC read as the day before), else None."""
        return WEEKEND.get(day_of_week(t)) if self.business else None

    def weekend_array(self, t: np.ndarray) -> np.ndarray:
        """Which of t fall on a weekend (all False for fixed-seconds calendars)."""
        if not self.business:
            return np.zeros(t.shape, dtype=bool)
        return day_of_week_array(t) >= 5

    def last_ts_ok(self, t: float) -> bool:
        """Whether the forecast after t (its last step) stays in the formattable range."""
        if t <= self.max_ts:
            return True
        return self.step_ts(t, self.horizon) <= MAX_TS

    def step_ts(self, t: float, k: int) -> float:
        """Timestamp k periods after t."""
        if self.business:
            return add_business_days(t, k)  # a weekend t counts as the next Monday
        return t + k * self.seconds

    def _forecast_ts_fragment(self, t: float) -> orjson.Fragment:
        return orjson.Fragment(orjson.dumps(self.forecast_ts(t)))

    def _forecast_ts_uncached(self, t: float) -> list[str]:
        if self.business:
            return [format_ts(self.step_ts(t, k)) for k in range(1, self.horizon + 1)]
        # t + k * seconds, from the cached offsets; format_ts is cached too, and the
        # horizons of consecutive ticks overlap in all but one step.
        return [format_ts(t + offset) for offset in self._offsets]
