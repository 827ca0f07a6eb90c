"""The KServe v2 REST bodies as pydantic models: their schema in /openapi.json.

What runs per request is the hand lane of protocol/v2_rest.py (the same rules);
tests/service/test_v2_rest.py holds the documented example to the service's verdict.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from service.protocol.requests import MAX_SEQ, MAX_STREAM_ID

_STRICT = ConfigDict(extra="forbid")
Datatype = Literal["FP32", "INT64", "BYTES"]


class V2ErrorBody(BaseModel):
    error: str = Field(
        description="[stable code] field: reason", examples=["[invalid_input] TS.shape: ..."]
    )


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1: any size")


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


class V2RequestParameters(BaseModel):
    """Triton's sequence extension, plus our exactly-once sequence number."""

    model_config = _STRICT

    sequence_id: StrictInt | StrictStr | None = Field(
        None,
        description=f"The stream: an unsigned 64-bit integer or a string of at most "
        f"{MAX_STREAM_ID} characters; 0 or empty (or absent) = a stateless forecast",
    )
    sequence_start: StrictBool | None = Field(None, description="Start the stream over")
    sequence_end: StrictBool | None = Field(None, description="Forget it after answering")
    sequence_seq: StrictInt | None = Field(
        None, ge=0, lt=MAX_SEQ, description="Exactly-once number of the last time step"
    )
    binary_data_output: StrictBool | None = Field(
        None, description="Answer every output as binary data"
    )
    priority: StrictInt | None = Field(None, description="Accepted, not used")
    timeout: StrictInt | None = Field(None, description="Accepted, not used")


class V2BinarySize(BaseModel):
    model_config = _STRICT
    binary_data_size: StrictInt = Field(ge=0)


class V2InputTensor(BaseModel):
    model_config = _STRICT

    name: Literal["INPUT", "TS"]
    shape: list[StrictInt] = Field(description="INPUT [1, T, n_inputs]; TS [1, T]")
    datatype: Datatype = Field(description="INPUT FP32; TS INT64 (epoch s) or BYTES (ISO)")
    parameters: V2BinarySize | None = None
    data: list[object] | None = Field(
        None, description="Row-major elements, flat or nested (absent with binary data)"
    )


class V2BinaryFlag(BaseModel):
    model_config = _STRICT
    binary_data: StrictBool | None = None


class V2RequestedOutput(BaseModel):
    model_config = _STRICT
    name: Literal["FORECAST", "FORECAST_TS", "QUANTILES"]
    parameters: V2BinaryFlag | None = None


class V2InferBody(BaseModel):
    """An inference request (the JSON header when binary data follows it)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "42",
                    "parameters": {"sequence_id": "sensor-17", "sequence_start": True},
                    "inputs": [
                        {"name": "INPUT", "shape": [1, 1, 2], "datatype": "FP32",
                         "data": [4102.5, 13.2]},
                        {"name": "TS", "shape": [1, 1], "datatype": "BYTES",
                         "data": ["2014-06-01T00:00:00Z"]},
                    ],
                    "outputs": [{"name": "FORECAST"}, {"name": "FORECAST_TS"}],
                }
            ]
        },
    )  # fmt: skip

    id: StrictStr | None = Field(None, max_length=256)
    parameters: V2RequestParameters | None = None
    inputs: list[V2InputTensor] = Field(min_length=1)
    outputs: list[V2RequestedOutput] | None = None


class V2OutputTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: V2BinarySize | None = None
    data: list[object] | None = None


class V2AnswerParameters(BaseModel):
    ts: str = Field(description="The last applied time step, ISO 8601 UTC")
    filled: int = Field(description="Periods filled from the model's own forecast")
    duplicate: bool | None = Field(None, description="A retry: nothing stepped")
    sequence_seq: int | None = Field(None, description="The last applied seq")


class V2InferAnswer(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: V2AnswerParameters
    outputs: list[V2OutputTensor]
