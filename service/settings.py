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
    empty disables snapshots (memory backend only: with Redis, Redis holds the state)."""

    snapshot_interval_seconds: float = Field(default=10.0, ge=0)
    """Memory backend: also save the snapshot this often, so a crash (kill -9, OOM)
    loses at most this window of acknowledged observations. 0 = only on graceful stop."""

    snapshot_start_empty_on_error: bool = False
    """A snapshot that cannot be read (corrupt, unknown format, rows of another shape)
    stops the start with an error naming the file. True starts empty instead (the bad
    file is left in place, and overwritten by the next save)."""

    accuracy_sample_fraction: float = Field(default=0.01, ge=0.0, le=1.0)
    """Fraction of streams (by hash of the id) scored at every horizon step; every
    stream is scored one step ahead."""

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest request body (and WebSocket message) accepted; larger gets 413."""

    max_history: int = Field(default=10_000, ge=1)
    """Most observations accepted in one request for one stream."""

    state_backend: Literal["memory", "redis"] = "memory"
    """Where stream state lives: "memory" (this process, snapshotted to a file) or
    "redis" (the system of record shared by replicas; memory is then a cache)."""

    redis_url: str | None = None
    """Redis URL for state_backend=redis, e.g. redis://redis:6379/0."""

    redis_cluster: bool = False
    """The Redis URL is one node of a Redis Cluster: each batch is split by hash slot
    (one script call per slot, pipelined per node). Off: the URL is one server (a
    primary, or a proxy that speaks to a cluster for us)."""

    redis_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    """Connect and socket timeout of every Redis call: past it the request gets 503 with
    Retry-After instead of hanging, and readiness goes false until Redis answers."""

    redis_health_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """How often Redis is pinged for readiness (requests also update it)."""

    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    """Log level of the service and uvicorn."""

    # -- exposure: authentication, request hygiene, connection limits -------------------

    auth_disabled: bool = False
    """Serve without API keys. Only for local development on 127.0.0.1 (`make serve`):
    the service logs a loud warning at start. Off by default, so an exposed deployment
    cannot forget to turn authentication on."""

    api_keys_file: Path | None = None
    """API keys, one per line: `<sha256 hex of the key> scopes=read,write[,admin,metrics]
    [prefix=<stream-id prefix>] [max_streams=N] [new_streams_per_second=R] [name=<label>]`.
    Re-read on SIGHUP and when the file changes. With authentication on and no file,
    every API request is refused with 401."""

    keys_reload_seconds: float = Field(default=2.0, gt=0, le=3600)
    """How often the keys file's modification time is checked for a reload."""

    metrics_public: bool = False
    """Serve /metrics without a key (for a port only the scraper reaches). Otherwise it
    needs a key with the metrics (or admin) scope."""

    allowed_hosts: Annotated[list[str], NoDecode] | None = None
    """Host header values accepted (name without port; `*` any, `.example.com` the domain
    and its subdomains). Unset: localhost, 127.0.0.1 and ::1 when bound to a loopback
    address (so DNS rebinding cannot reach a local service), any host otherwise."""

    cors_origins: Annotated[list[str], NoDecode] = []
    """Origins allowed cross-site (CORS); empty (the default) sends no CORS headers and
    refuses WebSocket handshakes that carry a foreign Origin."""

    read_timeout_seconds: float = Field(default=15.0, gt=0, le=3600)
    """A request's head and body must arrive within this from its first byte (or from
    the connection opening); slower connections are closed."""

    keep_alive_seconds: int = Field(default=75, ge=1, le=3600)
    """Idle keep-alive connections are closed after this (uvicorn timeout_keep_alive).
    Longer than any client's idle period (producers posting every few seconds, nginx's
    upstream keepalive_timeout of 60 s): a request sent just as the server closes an
    idle connection is lost without an answer, so the client side must close first."""

    max_connections: int = Field(default=2048, ge=1, le=1_000_000)
    """Connections (and tasks) at once; beyond it uvicorn answers 503 at once
    (uvicorn limit_concurrency)."""

    max_header_bytes: int = Field(default=16384, ge=1024, le=1_048_576)
    """Largest request line plus headers; larger gets 431 and the connection closes."""

    max_inflight_body_bytes: int = Field(default=64 * 1_048_576, ge=1024)
    """Request bodies and WebSocket messages held at once (read or being processed);
    a request beyond it is refused with 503 before its body is read."""

    # -- admission: per-request caps and bounded waiting --------------------------------

    admission_rows: int = Field(default=8192, ge=1, le=10_000_000)
    """Observations (model rows) of one model admitted in flight at once, from before a
    request waits for its streams until it answered; a request that does not fit is
    refused whole with 503 before any work. Bounds the queueing time of admitted work
    (about this many rows over the model's rows/s) and the parsed requests held."""

    admission_seconds: float = Field(default=1.0, gt=0, le=60)
    """Target time for admitted work: the bound on rows in flight is the model's
    measured drain rate (rows answered per second of busy time) times this, at most
    admission_rows and at least max_batch_rows; beyond it requests are refused whole
    with 503 before any work. One second (plus the 0.5 s refusal back-off) stays within
    the 2 s an answer should take under overload; shorter targets measured lower
    throughput under overload here (fewer requests in flight batch less well)."""

    queue_deadline_seconds: float = Field(default=1.0, gt=0, le=600)
    """An admitted request that waited this long for its stream (behind other requests
    of that stream) is refused with 503 when its turn comes, before any work."""

    refusal_backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    """After answering a request refused for load (503), share (429) or key (401/403) at
    once, its connection reads nothing more for this long, so clients that retry without
    waiting cannot make refusals the server's main work. 0 disables."""

    max_steps_per_request: int = Field(default=20_000, ge=1, le=100_000_000)
    """Most model steps (observations plus filled periods) one request may run; more is
    413 too_many_steps before any step."""

    max_answer_bytes: int = Field(default=32 * 1_048_576, ge=65536)
    """Upper bound of a multi-stream answer, estimated before any work from its entries
    and forecast detail; more is 413 answer_too_large."""

    max_waiting_per_stream: int = Field(default=256, ge=1, le=1_000_000)
    """Requests queued behind one stream's lock; beyond it 429 stream_busy."""

    # -- per-key stream quotas (authentication on) --------------------------------------

    key_max_streams: int | None = Field(default=None, ge=1)
    """Live streams per key and model (a key's max_streams overrides it); unset: only
    the model's max_streams."""

    key_new_streams_per_second: float = Field(default=1000.0, gt=0)
    """New streams a key may create per second and model (token bucket with a burst of
    one second's worth; a key's new_streams_per_second overrides it)."""

    eviction_grace_seconds: float = Field(default=300.0, ge=0)
    """A stream created less than this ago by a key within its quota is never evicted
    to make room for another."""

    @field_validator("providers", "allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
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

    @field_validator("snapshot_path", "api_keys_file", "grpc_port", mode="before")
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
