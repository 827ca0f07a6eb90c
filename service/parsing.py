"""Request bodies parsed with orjson and validated by hand.

Pydantic per request costs more than the model step (DESIGN §6), so the hot path
checks the few fields itself; every error names the field path and the reason.
"""

from __future__ import annotations

from typing import Any

import orjson

from service.errors import InvalidInput, MalformedRequest, PayloadTooLarge
from service.protocol.timestamps import parse_ts

F32_MAX = 3.4028234663852886e38
OBS_KEYS = frozenset(("ts", "seq", "values", "value"))
MAX_SEQ = 2**62
MAX_STREAM_ID = 256


class Obs:
    """One observation: epoch seconds, optional seq, inputs (None = missing)."""

    __slots__ = ("missing", "seq", "ts", "values")

    def __init__(self, ts: float, seq: int | None, values: list[float | None], missing: bool):
        self.ts = ts
        self.seq = seq
        self.values = values
        self.missing = missing


def load_json(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # orjson also refuses NaN / Infinity literals, which is what we want.
        raise MalformedRequest(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedRequest("body must be a JSON object")
    return data


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def check_stream_id(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{where}: must be a non-empty string, got {_type_name(value)}")
    if len(value) > MAX_STREAM_ID:
        raise InvalidInput(f"{where}: longer than {MAX_STREAM_ID} characters")
    return value


def check_reset(value: object, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput(f"{where}: must be true or false, got {_type_name(value)}")
    return value


Bounds = tuple[tuple[int, float, str], ...]  # (input index, min_exclusive, why)


def parse_observations(
    raw: object,
    n_inputs: int,
    max_history: int,
    where: str = "observations",
    bounds: Bounds = (),
) -> list[Obs]:
    """Validate a list of observations: shapes, types, finiteness, strict order."""
    if type(raw) is not list:
        raise InvalidInput(f"{where}: must be a list of observations, got {_type_name(raw)}")
    if not raw:
        raise InvalidInput(f"{where}: must hold at least one observation")
    if len(raw) > max_history:
        raise PayloadTooLarge(
            f"{where}: {len(raw)} observations, at most {max_history} per stream per request",
            code="history_too_long",
        )
    if len(raw) == 1:  # the common case: no order to check
        return [parse_one(raw[0], n_inputs, where, 0, bounds)]
    out: list[Obs] = []
    prev: Obs | None = None
    for i, o in enumerate(raw):
        ob = parse_one(o, n_inputs, where, i, bounds)
        if prev is not None:
            if ob.ts <= prev.ts:
                raise InvalidInput(f"{where}[{i}].ts: must be after the previous observation's")
            if (ob.seq is None) != (prev.seq is None):
                raise InvalidInput(f"{where}[{i}].seq: give seq on all observations or none")
            if ob.seq is not None and prev.seq is not None and ob.seq <= prev.seq:
                raise InvalidInput(f"{where}[{i}].seq: must be above the previous observation's")
        out.append(ob)
        prev = ob
    return out


def parse_one(o: object, n_inputs: int, prefix: str, i: int, bounds: Bounds = ()) -> Obs:
    # Hot path: exact type checks, and the field path is formatted only on error.
    if type(o) is not dict:
        raise InvalidInput(f"{prefix}[{i}]: must be an object, got {_type_name(o)}")
    for key in o:
        if key not in OBS_KEYS:
            raise InvalidInput(
                f"{prefix}[{i}].{key}: unknown field (allowed: ts, seq, values, value)"
            )
    raw_ts = o.get("ts")
    if raw_ts is None:
        raise InvalidInput(f"{prefix}[{i}].ts: is required")
    try:
        ts = parse_ts(raw_ts)
    except ValueError as exc:
        raise InvalidInput(f"{prefix}[{i}].ts: {exc}") from None
    seq = o.get("seq")
    if seq is not None and (type(seq) is not int or not 0 <= seq < MAX_SEQ):
        raise InvalidInput(f"{prefix}[{i}].seq: must be an integer in [0, 2^62), got {seq!r:.40}")
    values = o.get("values")
    field = "values"
    if values is None:
        if "value" in o:
            if n_inputs != 1:
                raise InvalidInput(
                    f"{prefix}[{i}].value: the model takes {n_inputs} inputs; use values"
                )
            values = [o["value"]]
            field = "value"
        else:
            raise InvalidInput(f"{prefix}[{i}].values: is required")
    elif "value" in o:
        raise InvalidInput(f"{prefix}[{i}]: give values or value, not both")
    elif type(values) is not list:
        raise InvalidInput(f"{prefix}[{i}].values: must be a list, got {_type_name(values)}")
    elif len(values) != n_inputs:
        raise InvalidInput(
            f"{prefix}[{i}].values: has {len(values)} values, the model takes {n_inputs}"
        )
    missing = False
    clean: list[float | None] = []
    for v in values:
        t = type(v)
        if t is float or t is int:
            fv = float(v)
            if -F32_MAX <= fv <= F32_MAX:
                clean.append(fv)
                continue
        if v is None:
            missing = True
            clean.append(None)
            continue
        j = len(clean)
        where = f"{prefix}[{i}].{field}" + (f"[{j}]" if field == "values" else "")
        if t is float or t is int:
            raise InvalidInput(f"{where}: {v!r:.40} does not fit float32")
        raise InvalidInput(f"{where}: must be a number or null, got {_type_name(v)}")
    for j, low, why in bounds:  # empty unless the manifest sets min_exclusive
        v = clean[j]
        if v is not None and not v > low:
            where = f"{prefix}[{i}].{field}" + (f"[{j}]" if field == "values" else "")
            raise InvalidInput(f"{where}: must be > {low:g} ({why}), got {v!r:.40}")
    return Obs(ts, seq, clean, missing)
