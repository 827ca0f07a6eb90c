"""Tensors of the Open Inference Protocol as bytes and python values: decoded inputs,
outputs to send, and the raw little-endian layout that REST's binary data extension
and gRPC's raw contents share (BYTES: each element a 4-byte length, then the bytes)."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import orjson

from service.errors import InvalidInput

MAX_DIMS = 8
_ITEM = {"FP32": ("f", 4), "INT64": ("q", 8)}  # struct codes, little-endian


class Tensor(NamedTuple):
    """A decoded input tensor: flat row-major python values (bytes for BYTES)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: list[Any]


class Output(NamedTuple):
    """An output tensor: ``data`` is a float32 array, or the BYTES elements as str (or
    their JSON list, pre-serialised)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    data: np.ndarray | list[str] | orjson.Fragment
    raw: bytes | None = None  # BYTES pre-encoded (4-byte little-endian length + text)

    def raw_bytes(self) -> bytes:
        if self.raw is not None:
            return self.raw
        assert isinstance(self.data, np.ndarray)
        return self.data.tobytes()

    def json_data(self) -> Any:
        return self.data.ravel() if isinstance(self.data, np.ndarray) else self.data


def decode_raw(datatype: str, raw: bytes | memoryview, count: int, where: str) -> list[Any]:
    """``count`` elements of a little-endian raw tensor, as python values."""
    if datatype == "BYTES":
        return decode_bytes(raw, count, where)
    code, size = _ITEM[datatype]
    if len(raw) != count * size:
        raise InvalidInput(f"{where}: {len(raw)} bytes, the shape needs {count * size}")
    return list(struct.unpack(f"<{count}{code}", raw))  # floats from float32 are exact


def decode_bytes(raw: bytes | memoryview, count: int, where: str) -> list[bytes]:
    out: list[bytes] = []
    view = memoryview(raw)
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise InvalidInput(f"{where}: truncated element length")
        (n,) = struct.unpack_from("<I", view, offset)
        offset += 4
        if offset + n > len(view):
            raise InvalidInput(f"{where}: element {len(out)} runs past the data")
        out.append(bytes(view[offset : offset + n]))
        offset += n
    if len(out) != count:
        raise InvalidInput(f"{where}: {len(out)} elements, the shape needs {count}")
    return out


def encode_bytes(items: Sequence[str]) -> bytes:
    """BYTES elements in the raw layout: each a 4-byte little-endian length, then it."""
    return _raw_layout([t.encode() for t in items])


def _raw_layout(data: list[bytes]) -> bytes:
    if not data:
        return b""
    if len(set(map(len, data))) == 1:  # e.g. timestamps: one prefix between them all
        prefix = struct.pack("<I", len(data[0]))
        return prefix + prefix.join(data)
    return b"".join(struct.pack("<I", len(d)) + d for d in data)


def encode_json_strings(text: bytes) -> bytes:
    """The raw BYTES layout of a JSON list of strings, from its JSON text. Without
    escapes (timestamps never have any) the elements are the bytes between the quotes,
    so nothing is decoded and encoded again."""
    if b"\\" in text:
        return encode_bytes(orjson.loads(text))
    if text == b"[]":
        return b""
    return _raw_layout(text[2:-2].split(b'","'))


def elements(shape: Sequence[int], where: str) -> int:
    """The element count of a shape; each dim an integer >= 0."""
    if len(shape) > MAX_DIMS:
        raise InvalidInput(f"{where}: more than {MAX_DIMS} dimensions")
    count = 1
    for d in shape:
        if type(d) is not int or d < 0:
            raise InvalidInput(f"{where}: dimensions must be integers >= 0, got {d!r:.40}")
        count *= d
    return count
