"""The answer bodies as pydantic models: documentation for /openapi.json only.

Answers are built as dicts by answers.py (no model is instantiated per request);
tests/service/test_openapi.py validates live answers against these models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Answer):
    code: str
    message: str


class ErrorBody(_Answer):
    """Every error: a stable code and a message that names the field and the reason."""

    error: ErrorDetail


class Forecast(_Answer):
    """One row per horizon step; each row has one value per quantile level."""

    ts: list[str]
    quantiles: list[float]
    values: list[list[float]]


class MedianForecast(_Answer):
    ts: list[str]
    median: list[float]


class StreamAnswer(_Answer):
    model: str
    version: str
    stream_id: str
    seq: int | None
    ts: str
    filled: int
    duplicate: bool
    forecast: Forecast


class StatusAnswer(_Answer):
    model: str
    version: str
    stream_id: str
    seq: int | None
    ts: str
    count: int
    forecast: Forecast


class ForecastAnswer(_Answer):
    model: str
    version: str
    ts: str
    filled: int
    forecast: Forecast


class EntryAnswer(_Answer):
    """One stream's result in a multi-stream answer (forecast as asked: full, median, none)."""

    stream_id: str
    seq: int | None
    ts: str
    filled: int
    duplicate: bool
    forecast: Forecast | MedianForecast | None = None


class EntryError(_Answer):
    """One stream's error in a multi-stream answer; the other streams still applied."""

    stream_id: str | None
    status: int
    error: ErrorDetail


class ManyAnswer(_Answer):
    model: str
    version: str
    results: list[EntryAnswer | EntryError]


class DeletedAnswer(_Answer):
    model: str
    stream_id: str
    deleted: bool


class HealthAnswer(_Answer):
    status: str


class ReadyAnswer(_Answer):
    status: str
    models: list[str]


class ModelsAnswer(_Answer):
    """Every version found, serving or not, with its manifest fields (docs/artifact.md)."""

    models: list[dict[str, Any]]


class ModelAnswer(BaseModel):
    """The served version's manifest fields, status, provider, live streams and versions."""

    model_config = ConfigDict(extra="allow")

    name: str
    version: str
    status: str
    versions: list[dict[str, Any]]


class ColumnError(_Answer):
    index: int
    stream_id: str | None
    status: int
    code: str
    message: str


class ColumnsForecast(_Answer):
    """Row i is stream i's forecast; horizon step k (1-based) is for its ts + k periods."""

    quantiles: list[float] | None = None
    values: list[list[list[float | None]]] | None = None  # null: the row failed
    median: list[list[float | None]] | None = None


class ColumnsAnswer(_Answer):
    """One row per request row, in request order; a failed row has its status and its
    error in ``errors`` and null in the other columns."""

    model: str
    version: str
    status: list[int]
    seq: list[int | None]
    ts: list[str | None]
    filled: list[int]
    duplicate: list[bool]
    errors: list[ColumnError]
    forecast: ColumnsForecast | None = None
