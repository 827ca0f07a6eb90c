"""Prometheus metrics, one registry per app (no module-level singletons).

Names are a contract with the Grafana dashboard and alerts; do not rename.

The hot paths update plain Python numbers (an attribute add, no lock, no label
lookup: a few tens of ns instead of ~1 µs per prometheus_client call) and a collector
turns them into metric families when /metrics is scraped. It is safe because every
update and every scrape happens on the event loop thread.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01,
    0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
_ROWS_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)


class Value:
    """A counter or gauge child."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = float(value)


class Buckets:
    """A histogram child: per-bucket counts (the last is +Inf) and the sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le is inclusive
        self.sum += value


class Family:
    def __init__(
        self,
        kind: str,
        name: str,
        doc: str,
        labelnames: Sequence[str],
        buckets: Sequence[float] = (),
    ) -> None:
        self.kind = kind
        self.name = name
        self.doc = doc
        self.labelnames = list(labelnames)
        self.buckets = tuple(float(b) for b in buckets)
        self.children: dict[tuple[str, ...], Value | Buckets] = {}

    def labels(self, *values: str) -> Value:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = Value()
        assert isinstance(child, Value)
        return child

    def histogram(self, *values: str) -> Buckets:
        child = self.children.get(values)
        if child is None:
            child = self.children[values] = Buckets(self.buckets)
        assert isinstance(child, Buckets)
        return child

    def collect(self) -> Metric:
        children = list(self.children.items())
        if self.kind == "histogram":
            hist = HistogramMetricFamily(self.name, self.doc, labels=self.labelnames)
            for labels, child in children:
                assert isinstance(child, Buckets)
                hist.add_metric(list(labels), _cumulative(child), child.sum)
            return hist
        family = (CounterMetricFamily if self.kind == "counter" else GaugeMetricFamily)(
            self.name, self.doc, labels=self.labelnames
        )
        for labels, child in children:
            assert isinstance(child, Value)
            family.add_metric(list(labels), child.value)
        return family


def _cumulative(child: Buckets) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    total = 0
    for bound, count in zip(child.bounds, child.counts, strict=False):
        total += count
        out.append((floatToGoString(bound), float(total)))
    out.append(("+Inf", float(total + child.counts[-1])))
    return out


class Metrics:
    def __init__(self) -> None:
        self.http_requests = Family(
            "counter", "forecast_http_requests", "HTTP requests", ["route", "method", "status"]
        )
        self.http_duration = Family(
            "histogram",
            "forecast_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            _LATENCY_BUCKETS,
        )
        self.inference_duration = Family(
            "histogram",
            "forecast_inference_duration_seconds",
            "One ONNX Runtime call",
            ["model"],
            _LATENCY_BUCKETS,
        )
        self.batch_rows = Family(
            "histogram", "forecast_batch_rows", "Rows (streams) per ORT call", ["model"],
            _ROWS_BUCKETS,
        )  # fmt: skip
        self.queue_depth = Family(
            "gauge", "forecast_queue_depth", "Rows waiting in the batcher", ["model"]
        )
        self.live_streams = Family("gauge", "forecast_live_streams", "Live streams", ["model"])
        self.evictions = Family(
            "counter", "forecast_stream_evictions", "Streams evicted (LRU)", ["model"]
        )
        self.expirations = Family(
            "counter", "forecast_stream_expirations", "Streams expired (idle)", ["model"]
        )
        self.observations = Family(
            "counter", "forecast_observations", "Observations applied", ["model"]
        )
        self.duplicates = Family(
            "counter", "forecast_duplicate_observations", "Retried observations", ["model"]
        )
        self.gap_filled = Family(
            "counter", "forecast_gap_filled", "Periods filled by the model's own forecast",
            ["model"],
        )  # fmt: skip
        self.rejected = Family(
            "counter", "forecast_rejected", "Requests refused for load", ["model", "reason"]
        )
        self.entry_rejections = Family(
            "counter", "forecast_entry_rejections",
            "Multi-stream entries (HTTP or WebSocket) answered with an error, by code",
            ["model", "reason"],
        )  # fmt: skip
        self.ws_messages = Family(
            "counter", "forecast_ws_messages", "WebSocket messages received", ["model"]
        )
        self.ws_answers = Family(
            "counter", "forecast_ws_answers", "WebSocket answers sent (one per stream)", ["model"]
        )
        self.auth_failures = Family(
            "counter", "forecast_auth_failures",
            "Requests refused by authentication or authorization, by reason", ["reason"],
        )  # fmt: skip
        self.connection_refusals = Family(
            "counter", "forecast_connection_refusals",
            "Connections closed before a request reached the app: malformed HTTP (400), "
            "headers too large (431), read timeout", ["reason"],
        )  # fmt: skip
        self.model_info = Family(
            "gauge", "forecast_model_info", "Loaded model", ["model", "version", "provider"]
        )
        self.live_abs_error = Family(
            "counter",
            "forecast_live_abs_error",
            "Sum of absolute errors of live forecasts (median) once the truth arrived",
            ["model", "horizon_step"],
        )
        self.live_scored = Family(
            "counter",
            "forecast_live_scored",
            "Forecasts scored against the truth",
            ["model", "horizon_step"],
        )
        self.offline_mae = Family(
            "gauge",
            "forecast_offline_mae",
            "MAE of the model on its test split, from the manifest",
            ["model", "horizon_step"],
        )
        self._families = [v for v in vars(self).values() if isinstance(v, Family)]
        self._http_children: dict[tuple[str, str, int], tuple[Value, Buckets]] = {}
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def describe(self) -> list[Metric]:
        return [f.collect() for f in self._families]

    def collect(self) -> Iterator[Metric]:
        for family in self._families:
            yield family.collect()

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        children = self._http_children.get(key)
        if children is None:
            children = (
                self.http_requests.labels(route, method, str(status)),
                self.http_duration.histogram(route, method),
            )
            self._http_children[key] = children
        children[0].value += 1.0
        children[1].observe(seconds)

    def for_model(self, model: str, horizon: int) -> ModelMetrics:
        return ModelMetrics(self, model, horizon)


class ModelMetrics:
    """Label children of one model, bound once."""

    def __init__(self, m: Metrics, model: str, horizon: int) -> None:
        self.inference = m.inference_duration.histogram(model)
        self.batch_rows = m.batch_rows.histogram(model)
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
