"""parse_entries' quick, array-checked lane against the per-entry path it falls back to."""

from __future__ import annotations

from typing import Any

from service.errors import ServiceError
from service.protocol.entries import parse_entries, parse_entry


class _Model:
    n_inputs = 2
    max_history = 10
    bounds = ()


def _describe(entry: object) -> Any:
    if isinstance(entry, ServiceError):
        return (type(entry).__name__, entry.status, entry.code, entry.message, entry.stream_id)  # type: ignore[attr-defined]
    sid, obs, reset = entry  # type: ignore[misc]
    return sid, [(o.ts, o.seq, o.values, o.missing) for o in obs], reset


def _one(sid: object, **obs: Any) -> dict[str, Any]:
    return {"stream_id": sid, "observations": [obs]}


ENTRIES: list[Any] = [
    _one("a", ts=1000, seq=1, values=[1.5, 2.5]),
    _one("b", ts="2014-06-01T00:00:00Z", values=[3, 4.0]),  # an integer value
    _one("c", ts=1000, values=[None, 2.0]),  # missing value
    _one("d", ts=1000, values=[1e39, 2.0]),  # does not fit float32
    _one("e", ts=1000, values=[True, 2.0]),  # bool is not a number
    _one("f", ts=1000, values=["1", 2.0]),  # string
    _one("g", ts=1000, values=[10**400, 2.0]),  # integer beyond float64 is refused too
    _one("a", ts=1001, values=[1.0, 2.0]),  # duplicate id
    _one("h", ts="yesterday", values=[1.0, 2.0]),
    _one("i", ts=1000, seq=-1, values=[1.0, 2.0]),
    _one("j", ts=1000, values=[1.0]),
    _one("k", ts=1000, value=1.0),
    _one("l", ts=1000, values=[1.0, 2.0], extra=1),
    _one("", ts=1000, values=[1.0, 2.0]),
    {"stream_id": "m", "observations": [{"ts": 1000, "values": [1.0, 2.0]}], "reset": True},
    {"stream_id": "n", "observations": []},
    "not an object",
    _one("o", ts=1000, values=[-3.4e38, 3.4e38]),
    _one("p", values=[1.0, 2.0]),
]


def _slow(entries: list[Any]) -> list[Any]:
    seen: dict[str, int] = {}
    return [parse_entry(i, e, seen, 2, 10) for i, e in enumerate(entries)]


def test_quick_lane_equals_the_per_entry_path() -> None:
    # Mixed, all clean, and every problem alone among clean entries.
    cases = [ENTRIES, [e for e in ENTRIES if e is ENTRIES[0] or e is ENTRIES[-2]]]
    cases += [[ENTRIES[0], bad, ENTRIES[-2]] for bad in ENTRIES[1:]]
    for entries in cases:
        try:
            want = [_describe(e) for e in _slow(entries)]
        except OverflowError:
            want = None
        try:
            got = [_describe(e) for e in parse_entries(entries, _Model())]  # type: ignore[arg-type]
        except OverflowError:
            got = None
        assert got == want


def test_quick_lane_messages_name_the_field() -> None:
    got = parse_entries(ENTRIES[:6], _Model())  # type: ignore[arg-type]
    assert _describe(got[0]) == ("a", [(1000.0, 1, [1.5, 2.5], False)], False)
    assert _describe(got[1])[1][0][2] == [3.0, 4.0]
    assert _describe(got[2])[1][0][2:] == ([None, 2.0], True)
    assert str(got[3]) == "streams[3].observations[0].values[0]: 1e+39 does not fit float32"
    assert "streams[4].observations[0].values[0]: must be a number or null, got bool" in str(got[4])
    assert "streams[5].observations[0].values[0]: must be a number or null, got str" in str(got[5])
