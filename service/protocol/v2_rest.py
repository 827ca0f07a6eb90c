"""The KServe v2 REST body, with the binary tensor data extension, in and out.

A request is a JSON header, optionally followed by the binary data of the inputs that
say ``"parameters": {"binary_data_size": n}``, in input order; the header's length is
the ``Inference-Header-Content-Length`` HTTP header. tritonclient sends binary by
default and no Content-Type, so the raw body is parsed whatever its type says. An
answer is the same layout: outputs asked for in binary (``binary_data: true`` on the
output, or ``binary_data_output: true`` on the request) follow the JSON header.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from service.errors import InvalidInput
from service.protocol.answers import Body, dumps
from service.protocol.requests import check_keys, load_json, optional_object
from service.protocol.v2 import (
    INPUT,
    MAX_NAME,
    TS,
    InferRequest,
    SequenceParams,
    V2Model,
    bounded,
)
from service.protocol.v2_tensors import MAX_DIMS, Output, Tensor, decode_raw, elements

# model_name / model_version: some examples carry them; they must then match the path.
REQUEST_KEYS = frozenset(("id", "parameters", "inputs", "outputs", "model_name", "model_version"))
INPUT_KEYS = frozenset(("name", "shape", "datatype", "parameters", "data"))
OUTPUT_KEYS = frozenset(("name", "parameters"))
DATATYPES = frozenset(("FP32", "INT64", "BYTES"))
BINARY_SIZE = frozenset(("binary_data_size",))
# Plans of JSON headers seen before, per model: at most this many, each of a header of
# at most this many bytes (a client chooses them), so at most 4 MiB of keys.
MAX_PLANS = 4096
MAX_PLANNED_HEADER = 1024
# Which JSON values each datatype takes (exact types: a bool is not a number here).
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "FP32": (float, int, type(None)),  # null = missing, as in /v1
    "INT64": (int,),
    "BYTES": (str,),
}


def check_fields(data: dict[str, Any], allowed: frozenset[str], where: str = "") -> None:
    """The unknown-field rule, with every field name bounded before it is echoed."""
    if data.keys() <= allowed:
        return
    for key in data:
        if len(key) > 64:
            raise InvalidInput(f"{where}: a field name is longer than 64 characters")
    check_keys(data, allowed, where)


def header_length(value: bytes | None, body_length: int) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        n = -1
    if not 0 <= n <= body_length:
        raise InvalidInput(
            f"Inference-Header-Content-Length: must be an integer in [0, {body_length}]"
        )
    return n


class _Plan(NamedTuple):
    """What a JSON header whose inputs are all binary says, checked once: the request
    but its observations, which come from the binary data of each request."""

    ident: str
    sequence: SequenceParams
    outputs: tuple[tuple[str, bool], ...]
    # INPUT's binary data: offset after the header, size, count, and its name in errors
    x: tuple[int, int, int, str]
    ts: tuple[int, int, int, str]  # TS's
    ts_type: str
    steps: int
    binary_size: int


def decode(body: bytes, json_length: int | None, model: V2Model) -> InferRequest:
    """The request of a body. A client streaming one series in binary mode sends the
    same JSON header every time (the values are in the binary data), so a header seen
    before is not parsed and checked again: its plan is looked up by its bytes. (Keyed
    without the sequence parameters, one plan would serve a whole fleet, but every
    request would parse its header again: measured in docs/benchmarks.md, not kept.)"""
    if json_length is not None and json_length <= MAX_PLANNED_HEADER:
        head = body[:json_length]
        plan = model.rest_plans.get(head)
        if plan is not None and len(body) == json_length + plan.binary_size:
            return _planned(plan, memoryview(body)[json_length:], model)
    request, plan = _decode(body, json_length, model, load_json(body[:json_length]))
    if plan is not None:
        plans = model.rest_plans
        if len(plans) >= MAX_PLANS:
            plans.clear()
        plans[body[:json_length]] = plan
    return request


def _request_head(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The id and the parameters of a request, checked."""
    ident = data.get("id", "")
    if type(ident) is not str or len(ident) > MAX_NAME:
        bounded(ident, "id")
    params = optional_object(data, "parameters", "parameters")
    return ident, params


def _planned(plan: _Plan, data: memoryview, model: V2Model) -> InferRequest:
    """A planned request from its binary data (``data``: what follows the header)."""
    at, size, count, where = plan.x
    values = decode_raw("FP32", data[at : at + size], count, where)
    at, size, count, where = plan.ts
    stamps = decode_raw(plan.ts_type, data[at : at + size], count, where)
    sequence = plan.sequence
    obs = model.rows(values, stamps, plan.ts_type, plan.steps, sequence.seq)
    return InferRequest(plan.ident, sequence, obs, plan.outputs)


def _decode(
    body: bytes, json_length: int | None, model: V2Model, data: dict[str, Any]
) -> tuple[InferRequest, _Plan | None]:
    """The request (``data``: its parsed JSON header), and its plan when its header can
    have one (all inputs binary)."""
    view = memoryview(body)
    check_fields(data, REQUEST_KEYS)
    if "model_name" in data or "model_version" in data:
        for key, served in (("model_name", model.name), ("model_version", model.version)):
            if data.get(key, served) != served:
                raise InvalidInput(f"{key}: the path asks for {model.name} version {model.version}")
    ident, params = _request_head(data)
    raw_inputs = data.get("inputs")
    if type(raw_inputs) is not list or not raw_inputs:
        raise InvalidInput("inputs: must be a non-empty list of tensors")
    offset = len(body) if json_length is None else json_length  # where binary data starts
    tensors = []
    layout = {}  # name: (offset after the header, size, count, as errors name it)
    for i, raw in enumerate(raw_inputs):
        tensor, size = _input(raw, i, view, offset)
        tensors.append(tensor)
        where = f"inputs[{i}] binary data"  # as _input names it
        layout[tensor.name] = (offset - (json_length or 0), size, len(tensor.data), where)
        offset += size
    if offset != len(body):
        raise InvalidInput(f"body: {len(body) - offset} bytes after the tensors' binary data")
    request = model.request(ident, params, tensors, _outputs(data.get("outputs")))
    plan = None
    if (
        json_length is not None
        and json_length <= MAX_PLANNED_HEADER
        and all("parameters" in raw and "data" not in raw for raw in raw_inputs)
    ):  # all binary; request() checked that they are INPUT and TS, once each
        x, ts = model.check_tensors(tensors)
        plan = _Plan(request.id, request.sequence, request.outputs, layout[INPUT], layout[TS],
                     ts.datatype, x.shape[1], offset - json_length)  # fmt: skip
    return request, plan


def _input(raw: object, i: int, view: memoryview, offset: int) -> tuple[Tensor, int]:
    """Input i and how many bytes of binary data it took. (The field path is formatted
    only on error: this runs for every input of every request.)"""
    if type(raw) is not dict:
        raise InvalidInput(f"inputs[{i}]: must be an object")
    if not raw.keys() <= INPUT_KEYS:
        check_fields(raw, INPUT_KEYS, f"inputs[{i}].")
    name = raw.get("name")
    if type(name) is not str or len(name) > MAX_NAME:
        name = bounded(name, f"inputs[{i}].name")  # raises
    datatype = raw.get("datatype")
    if type(datatype) is not str or datatype not in DATATYPES:  # a list is unhashable
        raise InvalidInput(f"inputs[{i}].datatype: must be one of FP32, INT64, BYTES")
    shape = raw.get("shape")
    if type(shape) is not list:
        raise InvalidInput(f"inputs[{i}].shape: must be a list of integers")
    count = elements(shape, f"inputs[{i}].shape")
    params = raw.get("parameters")
    size = None
    if params is not None:
        if type(params) is not dict:
            raise InvalidInput(f"inputs[{i}].parameters: must be an object")
        if not params.keys() <= BINARY_SIZE:
            check_fields(params, BINARY_SIZE, f"inputs[{i}].parameters.")
        size = params.get("binary_data_size")
    if size is not None:
        if "data" in raw:
            raise InvalidInput(f"inputs[{i}]: give data or binary_data_size, not both")
        if type(size) is not int or not 0 <= size <= len(view) - offset:
            raise InvalidInput(f"inputs[{i}].parameters.binary_data_size: past the end of the body")
        values = decode_raw(
            datatype, view[offset : offset + size], count, f"inputs[{i}] binary data"
        )
        return Tensor(name, datatype, tuple(shape), values), size
    if "data" not in raw:
        raise InvalidInput(f"inputs[{i}]: data or parameters.binary_data_size is required")
    values = _flat(raw["data"], count, f"inputs[{i}].data")
    kinds = _JSON_TYPES[datatype]
    for j, v in enumerate(values):
        if type(v) not in kinds:
            raise InvalidInput(
                f"inputs[{i}].data[{j}]: {type(v).__name__} is not a {datatype} value"
            )
    if datatype == "BYTES":
        values = [v.encode() for v in values]
    return Tensor(name, datatype, tuple(shape), values), 0


def _flat(data: object, count: int, where: str) -> list[Any]:
    """The tensor's elements, row-major, from a flat or nested JSON list."""
    if type(data) is not list:
        raise InvalidInput(f"{where}: must be a list")
    flat: list[Any] = []

    def walk(items: list[Any], depth: int) -> None:
        for v in items:
            if type(v) is list:
                if depth >= MAX_DIMS:
                    raise InvalidInput(f"{where}: nested deeper than {MAX_DIMS} levels")
                walk(v, depth + 1)
            else:
                flat.append(v)
                if len(flat) > count:  # stop early: the body may be large
                    raise InvalidInput(f"{where}: more elements than the shape's {count}")

    walk(data, 1)
    if len(flat) != count:
        raise InvalidInput(f"{where}: {len(flat)} elements, the shape needs {count}")
    return flat


def _outputs(raw: object) -> list[tuple[str, bool | None]] | None:
    """The outputs asked for; None = every output (absent, or an empty list, which is
    what gRPC's repeated field cannot tell apart from absent)."""
    if raw is None or raw == []:
        return None
    if type(raw) is not list:
        raise InvalidInput("outputs: must be a list")
    out: list[tuple[str, bool | None]] = []
    for i, o in enumerate(raw):
        if type(o) is not dict:
            raise InvalidInput(f"outputs[{i}]: must be an object")
        check_fields(o, OUTPUT_KEYS, f"outputs[{i}].")
        name = bounded(o.get("name"), f"outputs[{i}].name", MAX_NAME)
        params = optional_object(o, "parameters", f"outputs[{i}].parameters")
        check_fields(params, frozenset(("binary_data",)), f"outputs[{i}].parameters.")
        flag = params.get("binary_data")
        if flag is not None and not isinstance(flag, bool):
            raise InvalidInput(f"outputs[{i}].parameters.binary_data: must be true or false")
        out.append((name, flag))
    return out


def encode(
    model: V2Model, request: InferRequest, params: dict[str, Any], outputs: list[Output]
) -> tuple[bytes, int | None]:
    """(body, JSON header length or None when the answer is all JSON)."""
    binary = dict(request.outputs)
    tensors: list[Body] = []
    raw: list[bytes] = []
    for o in outputs:
        t: Body = {"name": o.name, "datatype": o.datatype, "shape": o.shape}
        if binary[o.name]:
            data = o.raw_bytes()
            t["parameters"] = {"binary_data_size": len(data)}
            raw.append(data)
        else:
            t["data"] = o.json_data()
        tensors.append(t)
    answer: Body = {"model_name": model.name, "model_version": model.version}
    if request.id:
        answer["id"] = request.id
    answer["parameters"] = params
    answer["outputs"] = tensors
    head = dumps(answer)
    if not raw:
        return head, None
    return b"".join([head, *raw]), len(head)
