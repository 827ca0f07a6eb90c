"""Timestamps on the wire: ISO 8601 or epoch seconds in, ISO 8601 UTC out.

Timestamps are carried internally as float epoch seconds (UTC). Clients without a zone
send wall-clock time, which the artifact contract (docs/artifact.md) says to take as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache

MIN_TS = -62135596800.0  # 0001-01-01
MAX_TS = 253402300799.0  # 9999-12-31T23:59:59, the last formattable second


def parse_ts(value: object) -> float:
    """ISO 8601 string (zone optional, UTC assumed) or epoch seconds -> epoch seconds.

    Raises ValueError with the reason; the caller names the field.
    """
    if isinstance(value, str):
        return _parse_iso(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        t = float(value)
        if not (MIN_TS <= t <= MAX_TS):  # also rejects NaN and infinity
            raise ValueError("epoch seconds out of range")
        return t
    raise ValueError("must be an ISO 8601 string or epoch seconds")


# Producers send the same tick for many streams: parsing and formatting are cached.
@lru_cache(maxsize=65536)
def _parse_iso(value: str) -> float:
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
    if not (MIN_TS <= t <= MAX_TS):  # e.g. 9999-12-31T23:00-12:00 is in year 10000
        raise ValueError("timestamp out of range (0001-01-01 to 9999-12-31 UTC)")
    return t


@lru_cache(maxsize=65536)
def format_ts(t: float) -> str:
    dt = datetime.fromtimestamp(t, UTC)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")
