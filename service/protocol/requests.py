"""Every check of a request body, one version of each rule.

The bodies are declared as pydantic models in bodies.py (``ObservationBody`` and
friends): they are the API's schema in /openapi.json and docs/api.md. What runs per
request is the hand lane here — orjson, exact type checks, the field path formatted
only on error — because a pydantic validation costs more than the rest of a small
request (measured in docs/benchmarks.md); tests/service/test_openapi.py holds the two
to the same verdicts.
Checks that depend on the model (how many inputs, which must be positive) are the hand
lane's alone and are described in the field docs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from service.errors import InvalidInput, MalformedRequest, PayloadTooLarge
from service.protocol.bodies import (
    ECHO_CHARS,
    F32_MAX,
    MAX_SEQ,
    MAX_STREAM_ID,
    ForecastBody,
    ManyStreamsBody,
    ObservationBody,
    StreamEntryBody,
    StreamObservationsBody,
    is_stream_id,
)
from service.protocol.timestamps import parse_ts

__all__ = [  # the schema models are re-exported: requests.py is the one place to look
    "F32_MAX",
    "MAX_SEQ",
    "MAX_STREAM_ID",
    "ForecastBody",
    "ManyStreamsBody",
    "ObservationBody",
    "StreamEntryBody",
    "StreamObservationsBody",
    "is_stream_id",
]

OBS_KEYS = frozenset(("ts", "seq", "values", "value"))
STREAM_KEYS = frozenset(("observations", "reset"))
FORECAST_KEYS = frozenset(("observations",))

# -- the hand lane -----------------------------------------------------------------------


Bounds = tuple[tuple[int, float, str], ...]  # (input index, min_exclusive, why)


@dataclass(frozen=True)
class WireSpec:
    """What a model's requests are checked against."""

    n_inputs: int
    max_history: int
    bounds: Bounds = ()


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


def check_keys(data: dict[str, Any], allowed: frozenset[str], where: str = "") -> None:
    """The unknown-field rule, for every object of every body."""
    for key in data:
        if key not in allowed:
            names = ", ".join(sorted(allowed))
            raise InvalidInput(f"{where}{key:.{ECHO_CHARS}}: unknown field (allowed: {names})")


def optional_object(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """An optional object field: absent or null is {}; any other non-object is refused
    (so [], 0 or "" are not taken for "none")."""
    value = data.get(key)
    if value is None:
        return {}
    if type(value) is not dict:
        raise InvalidInput(f"{where}: must be an object")
    return value


def check_stream_id(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{where}: must be a non-empty string, got {_type_name(value)}")
    if len(value) > MAX_STREAM_ID:
        raise InvalidInput(f"{where}: longer than {MAX_STREAM_ID} characters")
    if is_stream_id(value) is None:
        # Not echoed: a client's invalid id could be markup or a log-forging string.
        raise InvalidInput(f"{where}: may only hold the characters A-Z a-z 0-9 . _ : ~ -")
    return value


MAX_ECHO_ID = 128


def check_echo_id(value: object) -> object:
    """A WebSocket message's "id", echoed in every answer to it: so it is bounded."""
    if value is None or type(value) in (int, float, bool):
        return value
    if isinstance(value, str) and len(value) <= MAX_ECHO_ID:
        return value
    raise InvalidInput(f"id: must be a number or a string of at most {MAX_ECHO_ID} characters")


def check_reset(value: object, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidInput(f"{where}: must be true or false, got {_type_name(value)}")
    return value


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
                f"{prefix}[{i}].{key:.{ECHO_CHARS}}: unknown field "
                "(allowed: ts, seq, values, value)"
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
        raise InvalidInput(
            f"{prefix}[{i}].seq: must be an integer in [0, 2^62), got {seq!r:.40} (a stream "
            'at the largest seq goes on with an observation without seq, or "reset": true)'
        )
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
        if "values" in o:  # null is not a list (the schema says so too)
            raise InvalidInput(f"{prefix}[{i}].values: must be a list, got null")
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


@dataclass
class StreamRequest:
    """A parsed request for one stream (HTTP or WebSocket)."""

    obs: list[Obs]
    reset: bool


def parse_stream_body(
    data: dict[str, Any], spec: WireSpec, allowed: frozenset[str] = STREAM_KEYS
) -> StreamRequest:
    if len(data) > 1 or "observations" not in data:
        check_keys(data, allowed)
    obs = parse_observations(
        data.get("observations"), spec.n_inputs, spec.max_history, bounds=spec.bounds
    )
    return StreamRequest(obs, check_reset(data.get("reset"), "reset"))


def parse_forecast_body(data: dict[str, Any], spec: WireSpec) -> list[Obs]:
    check_keys(data, FORECAST_KEYS)
    return parse_observations(
        data.get("observations"), spec.n_inputs, spec.max_history, bounds=spec.bounds
    )
