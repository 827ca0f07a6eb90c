from __future__ import annotations

from prometheus_client import generate_latest

from service.metrics import Metrics


def test_families_names_and_histogram_semantics() -> None:
    m = Metrics()
    mm = m.for_model("x", 3)
    mm.inference.observe(0.0001)  # exactly on a bound: counted in that bucket (le)
    mm.inference.observe(0.0003)
    mm.inference.observe(10.0)  # beyond every bound: +Inf only
    mm.observations.inc(3)
    mm.scored[2].inc()
    m.observe_http("/v1/models/{model}", "GET", 404, 0.002)
    get = m.registry.get_sample_value
    assert get("forecast_inference_duration_seconds_bucket", {"model": "x", "le": "0.0001"}) == 1
    assert get("forecast_inference_duration_seconds_bucket", {"model": "x", "le": "0.0005"}) == 2
    assert get("forecast_inference_duration_seconds_bucket", {"model": "x", "le": "+Inf"}) == 3
    assert get("forecast_inference_duration_seconds_count", {"model": "x"}) == 3
    assert abs(get("forecast_inference_duration_seconds_sum", {"model": "x"}) - 10.0004) < 1e-9
    assert get("forecast_observations_total", {"model": "x"}) == 3
    assert get("forecast_live_scored_total", {"model": "x", "horizon_step": "3"}) == 1
    labels = {"route": "/v1/models/{model}", "method": "GET", "status": "404"}
    assert get("forecast_http_requests_total", labels) == 1
    text = generate_latest(m.registry).decode()
    for name in (
        "forecast_http_requests_total", "forecast_http_request_duration_seconds_bucket",
        "forecast_inference_duration_seconds_bucket", "forecast_batch_rows",
        "forecast_queue_depth", "forecast_live_streams", "forecast_stream_evictions_total",
        "forecast_stream_expirations_total", "forecast_observations_total",
        "forecast_duplicate_observations_total", "forecast_gap_filled_total",
        "forecast_rejected_total", "forecast_model_info", "forecast_live_abs_error_total",
        "forecast_live_scored_total", "forecast_offline_mae",
    ):  # fmt: skip
        assert f"# TYPE {name.removesuffix('_bucket')}" in text or name in text, name


def test_registries_are_per_app() -> None:
    a, b = Metrics(), Metrics()
    a.for_model("x", 1).observations.inc()
    assert b.registry.get_sample_value("forecast_observations_total", {"model": "x"}) is None
