"""Timestamps: parsing, time-derived features and forecast timestamps (docs/artifact.md).

Timestamps are carried internally as float epoch seconds (UTC). Clients without a zone
send wall-clock time, which the artifact contract says to take as UTC.
"""

from __future__ import annotations

import math
import sys
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import orjson

_MIN_TS = -62135596800.0  # 0001-01-01
_MAX_TS = 253402300799.0  # 9999-12-31T23:59:59
_TWO_PI = 2.0 * math.pi
_DAY = 86400.0


MAX_TS_CHARS = 64  # longer than any ISO 8601 form we take; checked before any parsing
ISO_CACHE_BYTES = 4 * 1_048_576
_ENTRY_OVERHEAD = 120  # a dict slot and the float, beyond the key's own size


def parse_ts(value: object) -> float:
    """ISO 8601 string (zone optional, UTC assumed) or epoch seconds -> epoch seconds.

    Raises ValueError with the reason; the caller names the field.
    """
    if isinstance(value, str):
        t = _iso_cache.get(value)
        return _parse_iso(value) if t is None else t
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        t = float(value)
        if not (_MIN_TS <= t <= _MAX_TS):  # also rejects NaN and infinity
            raise ValueError("epoch seconds out of range")
        return t
    raise ValueError("must be an ISO 8601 string or epoch seconds")


# Producers send the same tick for many streams, so parsed strings are cached. The cache
# is bounded in bytes (a client chooses the strings): only strings of at most
# MAX_TS_CHARS that parsed are kept, and it is emptied when full (a new tick refills it).
_iso_cache: dict[str, float] = {}
_iso_cache_bytes = 0


def iso_cache_bytes() -> int:
    """What the parse cache holds now, in (estimated) bytes."""
    return _iso_cache_bytes


def _parse_iso(value: str) -> float:
    global _iso_cache_bytes
    if len(value) > MAX_TS_CHARS:
        raise ValueError(f"longer than {MAX_TS_CHARS} characters")
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("not an ISO 8601 timestamp") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        t = dt.timestamp()
    except (OverflowError, ValueError):
        raise ValueError("timestamp out of range") from None
    if not (_MIN_TS <= t <= _MAX_TS):  # e.g. 9999-12-31T23:00-12:00 is in year 10000
        raise ValueError("timestamp out of range (0001-01-01 to 9999-12-31 UTC)")
    cost = sys.getsizeof(value) + _ENTRY_OVERHEAD
    if _iso_cache_bytes + cost > ISO_CACHE_BYTES:
        _iso_cache.clear()
        _iso_cache_bytes = 0
    _iso_cache[value] = t
    _iso_cache_bytes += cost
    return t


@lru_cache(maxsize=65536)
def format_ts(t: float) -> str:
    dt = datetime.fromtimestamp(t, UTC)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def time_feature(t: float, period: float, fn: str) -> float:
    # Python's % floors like numpy.mod, so negative epochs agree with training.
    angle = _TWO_PI * (t % period) / period
    return math.sin(angle) if fn == "sin" else math.cos(angle)


def _bday_index(t: float) -> int:
    """Business-day ordinal of the day holding t; Sat/Sun count as the next Monday."""
    day = math.floor(t / _DAY) + 3  # 1970-01-01 was a Thursday: shift so Monday = 0
    week, dow = divmod(day, 7)
    return week * 5 + min(dow, 5)


def _bday_index_array(t: np.ndarray) -> np.ndarray:
    day = np.floor(t / _DAY).astype(np.int64) + 3
    week, dow = np.divmod(day, 7)
    return week * 5 + np.minimum(dow, 5)


def _bday_to_day(index: int) -> int:
    week, dow = divmod(index, 5)
    return week * 7 + dow - 3


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
            self.max_ts = _MAX_TS - ((horizon // 5 + 1) * 7 + 3) * _DAY
        else:
            self.max_ts = _MAX_TS - horizon * self.seconds
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
            steps = _bday_index(later) - _bday_index(earlier)
        else:
            steps = round((later - earlier) / self.seconds)
        return max(1, steps)

    def steps_array(self, earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
        """steps_between over arrays (the multi-stream lane)."""
        if self.business:
            steps = _bday_index_array(later) - _bday_index_array(earlier)
        else:
            steps = np.rint((later - earlier) / self.seconds).astype(np.int64)
        return np.maximum(steps, 1)

    def last_ts_ok(self, t: float) -> bool:
        """Whether the forecast after t (its last step) stays in the formattable range."""
        if t <= self.max_ts:
            return True
        return self.step_ts(t, self.horizon) <= _MAX_TS

    def step_ts(self, t: float, k: int) -> float:
        """Timestamp k periods after t."""
        if self.business:
            index = _bday_index(t)
            # A weekend time maps to the next Monday; keep the time of day.
            day = _bday_to_day(index + k)
            return day * _DAY + (t % _DAY)
        return t + k * self.seconds

    def _forecast_ts_fragment(self, t: float) -> orjson.Fragment:
        return orjson.Fragment(orjson.dumps(self.forecast_ts(t)))

    def _forecast_ts_uncached(self, t: float) -> list[str]:
        if self.business:
            return [format_ts(self.step_ts(t, k)) for k in range(1, self.horizon + 1)]
        # t + k * seconds, from the cached offsets; format_ts is cached too, and the
        # horizons of consecutive ticks overlap in all but one step.
        return [format_ts(t + offset) for offset in self._offsets]
