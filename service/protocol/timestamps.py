"""Timestamps on the wire: ISO 8601 or epoch seconds in, ISO 8601 UTC out.

Timestamps are carried internally as float epoch seconds (UTC). Clients without a zone
send wall-clock time, which the artifact contract (docs/artifact.md) says to take as UTC.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from functools import lru_cache

MIN_TS = -62135596800.0  # 0001-01-01
MAX_TS = 253402300799.0  # 9999-12-31T23:59:59, the last formattable second


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
        if not (MIN_TS <= t <= MAX_TS):  # also rejects NaN and infinity
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
    if not (MIN_TS <= t <= MAX_TS):  # e.g. 9999-12-31T23:00-12:00 is in year 10000
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
