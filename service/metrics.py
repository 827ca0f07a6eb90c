"""Prometheus metrics, one CollectorRegistry per app (no module-level singletons).

Names are a contract with the Grafana dashboard and alerts; do not rename.
Hot paths use label children bound once (``ModelMetrics``), not ``.labels()`` per call.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01,
    0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
_ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "forecast_http_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.http_duration = Histogram(
            "forecast_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            "forecast_inference_duration_seconds",
            "One ONNX Runtime call",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_rows = Histogram(
            "forecast_batch_rows", "Rows (streams) per ORT call", ["model"],
            buckets=_ROWS_BUCKETS, registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "forecast_queue_depth", "Rows waiting in the batcher", ["model"], registry=r
        )
        self.live_streams = Gauge("forecast_live_streams", "Live streams", ["model"], registry=r)
        self.evictions = Counter(
            "forecast_stream_evictions", "Streams evicted (LRU)", ["model"], registry=r
        )
        self.expirations = Counter(
            "forecast_stream_expirations", "Streams expired (idle)", ["model"], registry=r
        )
        self.observations = Counter(
            "forecast_observations", "Observations applied", ["model"], registry=r
        )
        self.duplicates = Counter(
            "forecast_duplicate_observations", "Retried observations", ["model"], registry=r
        )
        self.gap_filled = Counter(
            "forecast_gap_filled", "Periods filled by the model's own forecast", ["model"],
            registry=r,
        )  # fmt: skip
        self.rejected = Counter(
            "forecast_rejected", "Requests refused for load", ["model", "reason"], registry=r
        )
        self.model_info = Gauge(
            "forecast_model_info", "Loaded model", ["model", "version", "provider"], registry=r
        )
        self.live_abs_error = Counter(
            "forecast_live_abs_error",
            "Sum of absolute errors of live forecasts (median) once the truth arrived",
            ["model", "horizon_step"],
            registry=r,
        )
        self.live_scored = Counter(
            "forecast_live_scored",
            "Forecasts scored against the truth",
            ["model", "horizon_step"],
            registry=r,
        )
        self.offline_mae = Gauge(
            "forecast_offline_mae",
            "MAE of the model on its test split, from the manifest",
            ["model", "horizon_step"],
            registry=r,
        )
        self._http_children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, str(status))
        children = self._http_children.get(key)
        if children is None:
            children = (
                self.http_requests.labels(route, method, key[2]),
                self.http_duration.labels(route, method),
            )
            self._http_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def for_model(self, model: str, horizon: int) -> ModelMetrics:
        return ModelMetrics(self, model, horizon)


class ModelMetrics:
    """Label children of one model, bound once."""

    def __init__(self, m: Metrics, model: str, horizon: int) -> None:
        self.inference = m.inference_duration.labels(model)
        self.batch_rows = m.batch_rows.labels(model)
        self.queue_depth = m.queue_depth.labels(model)
        self.live_streams = m.live_streams.labels(model)
        self.evictions = m.evictions.labels(model)
        self.expirations = m.expirations.labels(model)
        self.observations = m.observations.labels(model)
        self.duplicates = m.duplicates.labels(model)
        self.gap_filled = m.gap_filled.labels(model)
        self.queue_full = m.rejected.labels(model, "queue_full")
        self.streams_full = m.rejected.labels(model, "streams_full")
        self.abs_error = [m.live_abs_error.labels(model, str(k)) for k in range(1, horizon + 1)]
        self.scored = [m.live_scored.labels(model, str(k)) for k in range(1, horizon + 1)]
