"""All configuration, read once at start from ``FORECAST_*`` environment variables."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_KNOWN_PROVIDERS = {"CPUExecutionProvider", "CUDAExecutionProvider"}


class Settings(BaseSettings):
    """Service settings; every field maps to ``FORECAST_<FIELD>`` (case-insensitive)."""

    model_config = SettingsConfigDict(
        env_prefix="FORECAST_",
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    host: str = "127.0.0.1"
    """Interface uvicorn binds to."""

    port: int = Field(default=8000, ge=0, le=65535)
    """TCP port uvicorn listens on (0 picks a free port)."""

    grpc_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of the KServe v2 gRPC service (GRPCInferenceService), served by the same
    process and event loop; unset or empty = off, 0 picks a free port."""

    models_dir: Path = Path("models")
    """Directory holding artifacts as <name>/<version>/{model.onnx,manifest.json}."""

    providers: Annotated[list[str], NoDecode] = ["CPUExecutionProvider"]
    """ONNX Runtime execution providers in order of preference (JSON list or comma list).
    CUDA is used only when asked for and available; CPU is always the fallback."""

    intra_op_threads: int = Field(default=1, ge=1, le=256)
    """ORT intra-op threads per session; 1 is fastest for small batches on few cores."""

    max_batch_rows: int = Field(default=256, ge=1, le=1_000_000)
    """Most streams (rows) the micro-batcher puts into one ORT call. Measured here: 256
    moves ~1.5x more multi-stream updates/s than 1024 (the per-row cost of an ORT call
    grows past a few hundred rows while the event loop shares its core)."""

    inline_max_rows_steps: int = Field(default=16, ge=0, le=1_000_000)
    """ORT calls of at most this many rows x time steps run inline on the event loop;
    larger ones go to the model's worker thread (ORT releases the GIL there, so the loop
    parses the next requests meanwhile). The thread hop costs as much as a small step on
    few cores: inline measured +34-42% requests/s at 16 connections. 0 = always thread."""

    proxy_headers: bool = False
    """Trust X-Forwarded-For/-Proto from the peer (uvicorn's proxy_headers). Off by
    default: it costs ~5% of a small request; turn on behind a reverse proxy that sets
    them when client addresses matter."""

    queue_rows: int = Field(default=16384, ge=1, le=10_000_000)
    """Bound of each model's batcher queue, in rows; beyond it requests get 503."""

    max_streams: int = Field(default=100_000, ge=1, le=100_000_000)
    """Live streams kept per model; the least recently used are evicted past it."""

    stream_ttl_seconds: float = Field(default=7 * 86400.0, gt=0)
    """A stream idle for longer than this is forgotten."""

    expiry_interval_seconds: float = Field(default=30.0, gt=0)
    """How often idle streams are swept (at most ttl/2 is used)."""

    max_gap_steps: int = Field(default=48, ge=0, le=100_000)
    """Most missing periods (gap or missing values) filled with the model's own forecast
    before a request is refused (unless it asks for "reset": true)."""

    snapshot_path: Path | None = Path("state/snapshot.npz")
    """File the stream state is saved to on graceful stop and restored from at start;
    empty disables snapshots."""

    accuracy_sample_fraction: float = Field(default=0.01, ge=0.0, le=1.0)
    """Fraction of streams (by hash of the id) scored at every horizon step; every
    stream is scored one step ahead."""

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest request body (and WebSocket message) accepted; larger gets 413."""

    max_history: int = Field(default=10_000, ge=1)
    """Most observations accepted in one request for one stream."""

    state_backend: Literal["memory", "redis"] = "memory"
    """Where stream state lives; only "memory" is implemented in this version."""

    redis_url: str | None = None
    """Redis URL for state_backend=redis (a later issue)."""

    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    """Log level of the service and uvicorn."""

    @field_validator("providers", mode="before")
    @classmethod
    def _split_providers(cls, value: object) -> object:
        # Accept both '["A","B"]' and 'A,B' from the environment.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [p.strip() for p in text.split(",") if p.strip()]
        return value

    @field_validator("providers")
    @classmethod
    def _check_providers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one provider is needed")
        unknown = [p for p in value if p not in _KNOWN_PROVIDERS]
        if unknown:
            raise ValueError(f"unknown providers {unknown}; known: {sorted(_KNOWN_PROVIDERS)}")
        return value

    @field_validator("snapshot_path", "grpc_port", mode="before")
    @classmethod
    def _empty_disables(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check_backend(self) -> Settings:
        if self.state_backend == "redis" and not self.redis_url:
            raise ValueError("state_backend=redis needs FORECAST_REDIS_URL")
        if not math.isfinite(self.stream_ttl_seconds):
            raise ValueError("stream_ttl_seconds must be finite")
        return self
