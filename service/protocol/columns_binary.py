"""The columnar form in binary: no float printed or parsed, in or out.

It reuses the Open Inference Protocol's REST binary layout (protocol/v2_rest.py): a JSON
header, then the raw little-endian tensors in the order the header lists them, the
header's length in the ``Inference-Header-Content-Length`` HTTP header and
``Content-Type: application/octet-stream``. Request tensors (docs/api.md):
``stream_ids`` BYTES [n] (in the header's ``data`` or binary: each a 4-byte length and
the bytes), ``ts`` FP64 [n] or [1] (epoch seconds), optional ``seqs`` INT64 [n] (-1:
none), ``values`` FP32 [n, inputs] (NaN: missing); ``parameters.forecast`` as in JSON.
The numeric tensors are read with one ``np.frombuffer`` each and checked as arrays
(columns.py words a bad row); the answer's columns go out the same way.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.errors import InvalidInput, render
from service.protocol.answers import dumps
from service.protocol.columns import ColumnsRequest, check_arrays
from service.protocol.columns_answer import ColumnsResult
from service.protocol.entries import check_detail
from service.protocol.requests import WireSpec, check_keys, load_json, optional_object
from service.protocol.v2_tensors import decode_bytes, elements

HEADER_KEYS = frozenset(("inputs", "parameters"))
TENSOR_KEYS = frozenset(("name", "datatype", "shape", "data", "parameters"))
_TYPES = {"ts": ("FP64", "<f8"), "seqs": ("INT64", "<i8"), "values": ("FP32", "<f4")}


def decode_columns(body: bytes, header_length: int, spec: WireSpec) -> ColumnsRequest:
    data = load_json(body[:header_length])
    check_keys(data, HEADER_KEYS)
    params = optional_object(data, "parameters", "parameters")
    check_keys(params, frozenset(("forecast",)), "parameters.")
    detail = check_detail(params.get("forecast"))
    inputs = data.get("inputs")
    if type(inputs) is not list:
        raise InvalidInput("inputs: must be a list of tensors")
    view = memoryview(body)
    offset = header_length
    tensors: dict[str, Any] = {}
    for i, t in enumerate(inputs):
        if type(t) is not dict:
            raise InvalidInput(f"inputs[{i}]: must be an object")
        check_keys(t, TENSOR_KEYS, f"inputs[{i}].")
        name, shape = t.get("name"), t.get("shape")
        if name not in ("stream_ids", *_TYPES) or name in tensors:
            raise InvalidInput(
                f"inputs[{i}].name: must be one of stream_ids, ts, seqs, values, each once"
            )
        if type(shape) is not list:
            raise InvalidInput(f"inputs[{i}].shape: must be a list of integers >= 0")
        # Python integers: numpy's product would wrap past 2^63 (e.g. [2^32, 2^32] -> 0).
        count = elements(shape, f"inputs[{i}].shape")
        if name == "stream_ids" and (t.get("datatype") != "BYTES" or len(shape) != 1):
            raise InvalidInput(f"inputs[{i}]: stream_ids is BYTES of shape [n]")
        tensor_params = optional_object(t, "parameters", f"inputs[{i}].parameters")
        check_keys(tensor_params, frozenset(("binary_data_size",)), f"inputs[{i}].parameters.")
        size = tensor_params.get("binary_data_size")
        if size is None:
            if name != "stream_ids" or type(t.get("data")) is not list:
                raise InvalidInput(f"inputs[{i}]: parameters.binary_data_size is required")
            if len(t["data"]) != count:
                raise InvalidInput(
                    f"inputs[{i}].data: {len(t['data'])} elements, the shape needs {count}"
                )
            tensors[name] = t["data"]
            continue
        if "data" in t:  # which one would count is ambiguous: refused, as v2 does
            raise InvalidInput(f"inputs[{i}]: give data or binary_data_size, not both")
        if type(size) is not int or not 0 <= size <= len(body) - offset:
            raise InvalidInput(f"inputs[{i}].parameters.binary_data_size: past the end of the body")
        raw = view[offset : offset + size]
        offset += size
        if name == "stream_ids":
            tensors[name] = [b.decode("ascii", "replace") for b in decode_bytes(raw, count, name)]
            continue
        datatype, dtype = _TYPES[name]
        if t.get("datatype") != datatype:
            raise InvalidInput(f"inputs[{i}].datatype: {name} is {datatype}")
        if size != count * np.dtype(dtype).itemsize:
            raise InvalidInput(f"inputs[{i}]: {size} bytes, the shape needs {count} elements")
        # Flat until its shape is checked below: a shape of no elements can still have
        # dimensions numpy cannot make (e.g. [0, 2^62]).
        tensors[name] = (np.frombuffer(raw, dtype=dtype), shape)
    if offset != len(body):
        raise InvalidInput(f"body: {len(body) - offset} bytes after the tensors' binary data")
    for name in ("stream_ids", "ts", "values"):
        if name not in tensors:
            raise InvalidInput(f"inputs: the {name} tensor is required")
    ids = tensors["stream_ids"]
    n = len(ids)
    ts, ts_shape = tensors["ts"]
    if ts_shape not in ([1], [n]):
        raise InvalidInput(f"ts: shape {ts_shape}, want [1] or [{n}]")
    values, v_shape = tensors["values"]
    if v_shape != [n, spec.n_inputs]:
        raise InvalidInput(f"values: shape {v_shape}, want [{n}, {spec.n_inputs}]")
    values = values.reshape(n, spec.n_inputs)
    seqs = None
    if "seqs" in tensors:
        seqs, s_shape = tensors["seqs"]
        if s_shape != [n]:
            raise InvalidInput(f"seqs: shape {s_shape}, want [{n}]")
    ts = np.broadcast_to(ts.astype(np.float64), (n,))
    return check_arrays(ids, ts, seqs, values, detail, spec)


def encode_answer(
    model: str, version: str, ids: list[str], result: ColumnsResult, detail: str,
    quantiles: list[float], median_index: int,
) -> tuple[bytes, int]:  # fmt: skip
    """(body, header length): the answer's columns as binary outputs after a JSON header
    that carries the errors (index, stream id, status, code, message)."""
    n = len(ids)
    status = np.full(n, 200, dtype="<i4")
    errors = []
    for i in sorted(result.errors):
        code, rendered, _ = render(result.errors[i])
        status[i] = code
        errors.append(
            {"index": i, "stream_id": ids[i] or None, "status": code, **rendered["error"]}
        )
    outputs = [
        ("status", "INT32", status),
        ("seq", "INT64", result.seq.astype("<i8")),
        ("ts", "FP64", result.ts.astype("<f8")),
        ("filled", "INT32", result.filled.astype("<i4")),
        ("duplicate", "BOOL", result.duplicate.astype(np.bool_)),
    ]
    if detail == "full":
        outputs.append(("forecast", "FP32", result.forecast.astype("<f4")))
    elif detail == "median":
        median = np.ascontiguousarray(result.forecast[:, :, median_index], dtype="<f4")
        outputs.append(("median", "FP32", median))
    header = {
        "model_name": model,
        "model_version": version,
        "parameters": {"quantiles": quantiles, "errors": errors},
        "outputs": [
            {"name": name, "datatype": kind, "shape": list(arr.shape),
             "parameters": {"binary_data_size": arr.nbytes}}
            for name, kind, arr in outputs
        ],
    }  # fmt: skip
    head = dumps(header)
    return b"".join([head, *(arr.tobytes() for _, _, arr in outputs)]), len(head)
