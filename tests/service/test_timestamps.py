from __future__ import annotations

import pytest

from service.protocol.timestamps import MAX_TS, MIN_TS, format_ts, parse_ts


def test_parse_ts_forms() -> None:
    assert parse_ts("2014-06-01T00:00:00Z") == parse_ts("2014-06-01T00:00:00") == 1401580800.0
    assert parse_ts("2014-06-01T02:00:00+02:00") == 1401580800.0
    assert parse_ts(1401580800) == 1401580800.0
    for bad in ("soon", True, None, [1], float("nan"), 1e20):
        with pytest.raises(ValueError):
            parse_ts(bad)


def test_range_is_what_can_be_formatted() -> None:
    assert format_ts(MIN_TS) == "0001-01-01T00:00:00Z"
    assert format_ts(MAX_TS) == "9999-12-31T23:59:59Z"
    with pytest.raises(ValueError, match="out of range"):
        parse_ts("9999-12-31T23:00:00-12:00")
    with pytest.raises(ValueError, match="out of range"):
        parse_ts(MAX_TS + 1)


def test_format_roundtrip() -> None:
    assert format_ts(1401580800.0) == "2014-06-01T00:00:00Z"
    assert parse_ts(format_ts(1401580800.25)) == 1401580800.25
