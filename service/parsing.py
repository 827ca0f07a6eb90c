"""Request bodies parsed with orjson and validated by hand.

Pydantic per request costs more than the model step (DESIGN §6), so the hot path
checks the few fields itself; every error names the field path and the reason.
"""

from __future__ import annotations

from typing import Any

import orjson

from service.errors import InvalidInput, MalformedRequest, PayloadTooLarge
from service.features import parse_ts

_F32_MAX = 3.4028234663852886e38
_OBS_KEYS = frozenset(("ts", "seq", "values", "value"))
_MAX_SEQ = 2**62
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


def parse_observations(
    raw: object, n_inputs: int, max_history: int, where: str = "observations"
) -> list[Obs]:
    """Validate a list of observations: shapes, types, finiteness, strict order."""
    if not isinstance(raw, list):
        raise InvalidInput(f"{where}: must be a list of observations, got {_type_name(raw)}")
    if not raw:
        raise InvalidInput(f"{where}: must hold at least one observation")
    if len(raw) > max_history:
        raise PayloadTooLarge(
            f"{where}: {len(raw)} observations, at most {max_history} per stream per request",
            code="history_too_long",
        )
    out: list[Obs] = []
    prev: Obs | None = None
    for i, o in enumerate(raw):
        ob = _parse_one(o, n_inputs, f"{where}[{i}]")
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


def _parse_one(o: object, n_inputs: int, where: str) -> Obs:
    if not isinstance(o, dict):
        raise InvalidInput(f"{where}: must be an object, got {_type_name(o)}")
    for key in o:
        if key not in _OBS_KEYS:
            raise InvalidInput(f"{where}.{key}: unknown field (allowed: ts, seq, values, value)")
    if "ts" not in o:
        raise InvalidInput(f"{where}.ts: is required")
    try:
        ts = parse_ts(o["ts"])
    except ValueError as exc:
        raise InvalidInput(f"{where}.ts: {exc}") from None
    seq = o.get("seq")
    if seq is not None and (
        not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < _MAX_SEQ
    ):
        raise InvalidInput(f"{where}.seq: must be an integer in [0, 2^62), got {seq!r:.40}")
    if "values" in o:
        if "value" in o:
            raise InvalidInput(f"{where}: give values or value, not both")
        values = o["values"]
        if not isinstance(values, list):
            raise InvalidInput(f"{where}.values: must be a list, got {_type_name(values)}")
        if len(values) != n_inputs:
            raise InvalidInput(
                f"{where}.values: has {len(values)} values, the model takes {n_inputs}"
            )
        vwhere = f"{where}.values"
    elif "value" in o:
        if n_inputs != 1:
            raise InvalidInput(f"{where}.value: the model takes {n_inputs} inputs; use values")
        values = [o["value"]]
        vwhere = f"{where}.value"
    else:
        raise InvalidInput(f"{where}.values: is required")
    missing = False
    clean: list[float | None] = []
    for j, v in enumerate(values):
        if v is None:
            missing = True
            clean.append(None)
        elif isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool)):
            fv = float(v)
            if not -_F32_MAX <= fv <= _F32_MAX:
                raise InvalidInput(f"{vwhere}[{j}]: {v!r:.40} does not fit float32")
            clean.append(fv)
        else:
            raise InvalidInput(f"{vwhere}[{j}]: must be a number or null, got {_type_name(v)}")
    return Obs(ts, seq, clean, missing)
