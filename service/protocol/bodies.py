"""The request bodies as pydantic models: the API's schema (/openapi.json, docs/api.md).

What runs per request is the hand lane in requests.py, which takes its limits from
here; tests/service/test_openapi.py holds the two to the same verdicts.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

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

from service.protocol.timestamps import MAX_TS_CHARS

F32_MAX = 3.4028234663852886e38
MAX_SEQ = 2**62
MAX_STREAM_ID = 128
# Stream ids are path segments, metric-free map keys and echoed in answers: a safe set
# (no '/', no spaces, no non-ASCII that could collide after decoding), bounded in length.
STREAM_ID_CHARS = "A-Za-z0-9._:~-"
STREAM_ID_PATTERN = f"^[{STREAM_ID_CHARS}]{{1,{MAX_STREAM_ID}}}$"
_STREAM_ID = re.compile(f"[{STREAM_ID_CHARS}]{{1,{MAX_STREAM_ID}}}")
is_stream_id = _STREAM_ID.fullmatch
ECHO_CHARS = 40  # most characters of a client's value or key quoted in an error message

Number = StrictFloat | StrictInt


class ObservationBody(BaseModel):
    """One observation: a timestamp and the model's inputs in manifest order."""

    # The schema says what the validator below checks: values or value, exactly one.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["values"]}, {"required": ["value"]}]},
    )

    ts: Annotated[StrictStr, Field(max_length=MAX_TS_CHARS)] | Number = Field(
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
    values: list[Number | None] = Field(  # absent is allowed, null is not
        None,  # type: ignore[arg-type]
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

    stream_id: StrictStr = Field(
        min_length=1,
        max_length=MAX_STREAM_ID,
        pattern=STREAM_ID_PATTERN,
        description=f"1 to {MAX_STREAM_ID} characters of A-Z a-z 0-9 . _ : ~ -",
    )
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


class ColumnsBody(BaseModel):
    """Observations of many streams as parallel columns, one row per stream (the fast
    form for bulk producers). Row i is stream ``stream_ids[i]``'s next observation: at
    ``ts`` (one for all rows, or ``ts[i]``), ``seqs[i]`` and ``values[i]`` (null =
    missing). A bad row gets its own error in the answer and the others still apply;
    each stream may appear once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "stream_ids": ["a", "b"],
                    "ts": 1401580800,
                    "seqs": [17, 17],
                    "values": [[1.0, 2.0], [3.0, 4.0]],
                    "forecast": "none",
                }
            ]
        },
    )

    stream_ids: list[
        Annotated[
            StrictStr, Field(min_length=1, max_length=MAX_STREAM_ID, pattern=STREAM_ID_PATTERN)
        ]
    ] = Field(min_length=1, description=f"1 to {MAX_STREAM_ID} characters of A-Z a-z 0-9 . _ : ~ -")
    ts: (
        Annotated[StrictStr, Field(max_length=MAX_TS_CHARS)]
        | Number
        | list[Annotated[StrictStr, Field(max_length=MAX_TS_CHARS)] | Number]
    ) = Field(
        description="One timestamp for every row (a tick), or one per row: ISO 8601 (UTC "
        "when no zone is given) or epoch seconds"
    )
    seqs: list[Annotated[StrictInt, Field(ge=0, lt=MAX_SEQ)] | None] | None = Field(
        None, description="Per-row sequence number for exactly-once retries (null: none)"
    )
    values: list[list[Number | None]] = Field(
        description="One row per stream: the model's inputs in manifest order (null = "
        "missing, filled from the forecast); each must fit float32"
    )
    forecast: Literal["full", "median", "none"] | None = Field(
        None, description="How much forecast the answer carries (default full)"
    )
