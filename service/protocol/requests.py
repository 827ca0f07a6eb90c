"""Every check of a request body, one version of each rule.

The bodies are declared as pydantic models (``ObservationBody`` and friends): they are
the API's schema in /openapi.json and docs/api.md. What runs per request is the hand
lane below them — orjson, exact type checks, the field path formatted only on error —
because a pydantic validation costs more than the rest of a small request (measured in
docs/benchmarks.md); tests/service/test_openapi.py holds the two to the same verdicts.
Checks that depend on the model (how many inputs, which must be positive) are the hand
lane's alone and are described in the field docs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from service.errors import InvalidInput, MalformedRequest, PayloadTooLarge
from service.protocol.timestamps import parse_ts

F32_MAX = 3.4028234663852886e38
MAX_SEQ = 2**62
MAX_STREAM_ID = 256
OBS_KEYS = frozenset(("ts", "seq", "values", "value"))
STREAM_KEYS = frozenset(("observations", "reset"))
FORECAST_KEYS = frozenset(("observations",))

# -- the schema ------------------------------------------------------------------------

Number = StrictFloat | StrictInt


class ObservationBody(BaseModel):
    """One observation: a timestamp and the model's inputs in manifest order."""

    model_config = ConfigDict(extra="forbid")

    ts: StrictStr | Number = Field(
        description="ISO 8601 (UTC when no zone is given) or epoch seconds, "
        "0001-01-01 to 9999-12-31",
        examples=["2014-06-01T00:00:00Z", 1401580800],
    )
    seq: StrictInt | None = Field(
        None,
        ge=0,
        lt=MAX_SEQ,
        description="Per-stream sequence number for exactly-once retries (give it on "
        "every observation of a request or on none)",
    )
    values: list[Number | None] | None = Field(
        None,
        description="The model's inputs in manifest order (as many as the model takes; "
        "null = missing, filled from the forecast); each must fit float32",
    )
    value: Number | None = Field(
        None, description="For a one-input model: the input alone (instead of values)"
    )

    @model_validator(mode="after")
    def _values_or_value(self) -> ObservationBody:
        given = {"values", "value"} & self.model_fields_set
        if len(given) != 1:
            raise ValueError("give values or value (exactly one)")
        if "values" in given and self.values is None:
            raise ValueError("values must be a list")
        return self


class StreamObservationsBody(BaseModel):
    """New observations of one stream, oldest first."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "observations": [
                        {"ts": "2014-06-01T00:00:00Z", "seq": 1, "values": [4102.5, 13.2]}
                    ]
                }
            ]
        },
    )

    observations: list[ObservationBody] = Field(min_length=1)
    reset: StrictBool | None = Field(
        None, description="Start the stream over from these observations"
    )


class ForecastBody(BaseModel):
    """A history, oldest first; the forecast after its last observation (touches no stream)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "observations": [
                        {"ts": "2014-06-01T00:00:00Z", "values": [4102.5, 13.2]},
                        {"ts": "2014-06-01T00:30:00Z", "values": [4011.0, 13.0]},
                    ]
                }
            ]
        },
    )

    observations: list[ObservationBody] = Field(min_length=1)


class StreamEntryBody(BaseModel):
    """One stream's part of a multi-stream request."""

    model_config = ConfigDict(extra="forbid")

    stream_id: StrictStr = Field(min_length=1, max_length=MAX_STREAM_ID)
    observations: list[ObservationBody] = Field(min_length=1)
    reset: StrictBool | None = None


class ManyStreamsBody(BaseModel):
    """Observations of many streams. A bad entry gets its own error in the answer and the
    others still apply; each stream may appear once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "streams": [
                        {
                            "stream_id": "a",
                            "observations": [{"ts": 1401580800, "values": [1.0, 2.0]}],
                        }
                    ],
                    "forecast": "median",
                }
            ]
        },
    )

    streams: list[StreamEntryBody] = Field(min_length=1)
    forecast: Literal["full", "median", "none"] | None = Field(
        None, description="How much forecast each result carries (default full)"
    )


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
            raise InvalidInput(f"{where}{key}: unknown field (allowed: {names})")


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
