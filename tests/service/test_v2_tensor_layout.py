"""The raw BYTES layout of v2 tensors: built from the elements or straight from their
JSON text (the forecast timestamps' path), the same bytes either way, decoded back."""

from __future__ import annotations

import struct

import orjson
import pytest

from service.errors import InvalidInput
from service.protocol.v2_tensors import decode_bytes, encode_bytes, encode_json_strings


def by_hand(items: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in items)


@pytest.mark.parametrize(
    "items",
    [
        [],
        [""],
        ["2014-06-01T00:30:00Z"],
        ["2014-06-01T00:30:00Z", "2014-06-01T01:00:00Z", "2014-06-01T01:30:00Z"],
        ["a", "bcd", ""],  # unequal lengths
        ['say "hi"', "back\\slash", "ünïcode", '","'],  # escapes in the JSON text
    ],
)
def test_both_encoders_give_the_documented_layout(items: list[str]) -> None:
    expected = by_hand(items)
    assert encode_bytes(items) == expected
    assert encode_json_strings(orjson.dumps(items)) == expected
    assert [b.decode() for b in decode_bytes(expected, len(items), "x")] == items


def test_a_truncated_layout_is_refused() -> None:
    raw = encode_bytes(["2014-06-01T00:30:00Z"])
    with pytest.raises(InvalidInput, match="runs past the data"):
        decode_bytes(raw[:-1], 1, "TS")
