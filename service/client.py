"""A client helper: the columnar multi-stream request body built from arrays.

For producers that hold their readings as arrays (a gateway's tick of 10,000 sensors):
``columns_body`` serialises them with orjson straight from numpy, without one Python
object per stream, for ``POST /v1/models/{model}/columns`` (docs/api.md). It imports
nothing of the service, so a client can copy it alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

COLUMNS_PATH = "/v1/models/{model}/columns"


def columns_body(
    stream_ids: Sequence[str],
    ts: float | str | Sequence[float] | Sequence[str] | np.ndarray,
    values: np.ndarray | Sequence[Sequence[float | None]],
    seqs: np.ndarray | Sequence[int | None] | None = None,
    forecast: str = "full",
) -> bytes:
    """The JSON body: ``values`` [n, inputs] (NaN or None = missing), ``ts`` one
    timestamp for all rows or one per row (epoch seconds or ISO 8601), ``seqs`` one per
    row (optional)."""
    body: dict[str, Any] = {"stream_ids": list(stream_ids), "forecast": forecast}
    body["ts"] = ts if isinstance(ts, (int, float, str, np.ndarray)) else list(ts)
    if isinstance(values, np.ndarray):
        # orjson writes NaN as null, which the service reads as a missing value.
        arr = np.ascontiguousarray(values, dtype=np.float64)
        if arr.ndim != 2 or len(arr) != len(body["stream_ids"]):
            raise ValueError(f"values: shape {arr.shape}, want ({len(body['stream_ids'])}, inputs)")
        body["values"] = arr
    else:
        body["values"] = list(values)
    if seqs is not None:
        body["seqs"] = (
            np.ascontiguousarray(seqs, dtype=np.int64) if isinstance(seqs, np.ndarray) else seqs
        )
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)


def columns_of(answer: bytes | dict[str, Any]) -> dict[str, Any]:
    """The answer with its columns as numpy arrays (forecast values [n, H, Q] float32,
    NaN on failed rows; seq -1 where none)."""
    data = orjson.loads(answer) if isinstance(answer, (bytes, str)) else dict(answer)
    out = dict(data)
    out["status"] = np.asarray(data["status"], dtype=np.int16)
    out["seq"] = np.array([-1 if s is None else s for s in data["seq"]], dtype=np.int64)
    forecast = data.get("forecast")
    if forecast is not None:
        key = "values" if "values" in forecast else "median"
        out[key] = np.array(forecast[key], dtype=np.float32)
    return out


def columns_binary_body(
    stream_ids: Sequence[str],
    ts: float | np.ndarray,
    values: np.ndarray,
    seqs: np.ndarray | None = None,
    forecast: str = "full",
) -> tuple[bytes, int]:
    """The binary body (the Open Inference Protocol's binary tensor layout) and its JSON
    header's length: send it with ``Content-Type: application/octet-stream`` and
    ``Inference-Header-Content-Length: <length>``. ``values`` float32 [n, inputs] (NaN =
    missing), ``ts`` epoch seconds (one, or one per row), ``seqs`` int64 (-1 = none)."""
    n = len(stream_ids)
    stamps = np.ascontiguousarray(np.atleast_1d(ts), dtype="<f8")
    tensors: list[tuple[str, str, list[int], bytes]] = [
        ("ts", "FP64", [len(stamps)], stamps.tobytes()),
        ("values", "FP32", list(np.shape(values)), np.ascontiguousarray(values, "<f4").tobytes()),
    ]
    if seqs is not None:
        tensors.append(("seqs", "INT64", [n], np.ascontiguousarray(seqs, "<i8").tobytes()))
    # The ids go in the header as JSON data (the protocol allows it for any input): one
    # C-speed parse on the server instead of a length-prefixed walk per id.
    ids = {"name": "stream_ids", "datatype": "BYTES", "shape": [n], "data": list(stream_ids)}
    header = orjson.dumps(
        {
            "parameters": {"forecast": forecast},
            "inputs": [ids] + [
                {"name": name, "datatype": kind, "shape": shape,
                 "parameters": {"binary_data_size": len(raw)}}
                for name, kind, shape, raw in tensors
            ],
        }
    )  # fmt: skip
    return header + b"".join(raw for *_, raw in tensors), len(header)


_DTYPES = {"INT32": "<i4", "INT64": "<i8", "FP64": "<f8", "FP32": "<f4", "BOOL": "?"}


def binary_answer(body: bytes, header_length: int) -> dict[str, Any]:
    """A binary answer as arrays: ``status``, ``seq``, ``ts`` (epoch seconds, NaN on a
    failed row), ``filled``, ``duplicate``, ``forecast`` [n, H, Q] or ``median`` [n, H];
    plus ``errors`` and ``quantiles`` from its header."""
    header = orjson.loads(body[:header_length])
    out: dict[str, Any] = {
        "errors": header["parameters"]["errors"],
        "quantiles": header["parameters"]["quantiles"],
    }
    offset = header_length
    for o in header["outputs"]:
        size = o["parameters"]["binary_data_size"]
        raw = body[offset : offset + size]
        out[o["name"]] = np.frombuffer(raw, dtype=_DTYPES[o["datatype"]]).reshape(o["shape"])
        offset += size
    return out
