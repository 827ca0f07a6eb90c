"""A real Prometheus scrapes the real service while it serves traffic; every PromQL
expression of the Grafana dashboard must then return data, and every alert rule must
load and evaluate.

Needs the Debian package `prometheus` (/usr/bin/prometheus); .ci/run installs it. When
it is missing the test FAILS: a dashboard nobody has run against Prometheus is not done.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from deploy_support import (
    ALERTS_YML,
    TINY_MODEL,
    Traffic,
    alert_rules,
    dashboard,
    dashboard_queries,
    free_port,
    require_binary,
    running_service,
    stop_process,
    substitute_variables,
    wait_http_ok,
)

# Small enough that a short run evicts (cap) and expires (idle) streams.
SERVICE_ENV = {
    "FORECAST_MAX_STREAMS": "4",
    "FORECAST_STREAM_TTL_SECONDS": "3",
    "FORECAST_EXPIRY_INTERVAL_SECONDS": "0.5",
    "FORECAST_ACCURACY_SAMPLE_FRACTION": "1.0",
}


@dataclass
class Stack:
    service_url: str
    prometheus_url: str

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.prometheus_url}/api/v1/query", params={"query": promql}, timeout=10
        )
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (promql, body)
        return list(body["data"]["result"])


@pytest.fixture(scope="module")
def stack(tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus = require_binary("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus-live")

    with contextlib.ExitStack() as cleanup:
        service_url = cleanup.enter_context(running_service(tiny_models_dir, tmp, SERVICE_ENV))
        service_port = int(service_url.rsplit(":", 1)[1])

        # The compose config, pointed at this service, scraping every second.
        shutil.copy(ALERTS_YML, tmp / "alerts.yml")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["alerts.yml"],
            "scrape_configs": [
                {
                    "job_name": "forecast",
                    "metrics_path": "/metrics",
                    "static_configs": [{"targets": [f"127.0.0.1:{service_port}"]}],
                }
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        prom_port = free_port()
        prom_log = tmp / "prometheus.log"
        with prom_log.open("wb") as log:
            prom = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={tmp / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    "--log.level=warn",
                ],
                cwd=tmp,
                stdout=log,
                stderr=log,
            )
        cleanup.callback(stop_process, prom)
        prometheus_url = f"http://127.0.0.1:{prom_port}"
        wait_http_ok(f"{prometheus_url}/-/ready", prom, prom_log, timeout=30)
        yield Stack(service_url, prometheus_url)


@pytest.fixture(scope="module")
def traffic(stack: Stack) -> Iterator[None]:
    """A burst of varied traffic, then a steady producer for the rest of the module, so
    rate() windows hold live data while the dashboard's queries run."""
    with httpx.Client(base_url=stack.service_url, timeout=10) as client:
        Traffic(client, TINY_MODEL).burst(streams=6, steps=8)
    stop = threading.Event()
    failures: list[BaseException] = []

    def steady() -> None:
        with httpx.Client(base_url=stack.service_url, timeout=10) as steady_client:
            steady_driver = Traffic(steady_client, TINY_MODEL)
            try:
                while not stop.is_set():
                    steady_driver.step("steady")
                    steady_driver.errors()
                    stop.wait(0.05)
            except BaseException as exc:  # reported by the test, not lost in the thread
                failures.append(exc)

    thread = threading.Thread(target=steady, daemon=True)
    thread.start()
    try:
        # Idle streams expire after 3s; the steady stream keeps scoring live accuracy.
        _wait_for(stack, "sum(forecast_stream_expirations_total) > 0", timeout=20)
        _wait_for(stack, 'sum(rate(forecast_live_scored_total{horizon_step="1"}[15s])) > 0', 20)
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not failures, failures


def _wait_for(stack: Stack, promql: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.query(promql):
            return
        time.sleep(0.5)
    pytest.fail(f"Prometheus never saw {promql!r} within {timeout}s")


def _finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


DASHBOARD = dashboard()
QUERIES = dashboard_queries(DASHBOARD)


@pytest.mark.parametrize(("panel", "expr"), QUERIES, ids=[p for p, _ in QUERIES])
def test_dashboard_query_returns_data(stack: Stack, traffic: None, panel: str, expr: str) -> None:
    promql = substitute_variables(expr, DASHBOARD)
    result = stack.query(promql)
    assert result, f"panel {panel!r}: no data for\n{promql}"
    assert _finite(result), f"panel {panel!r}: only NaN/Inf for\n{promql}\n{result}"


def test_dashboard_variables_have_values(stack: Stack, traffic: None) -> None:
    for var in DASHBOARD["templating"]["list"]:
        metric, label = var["definition"].removeprefix("label_values(").rstrip(")").split(", ")
        values = {r["metric"].get(label) for r in stack.query(f"count by ({label}) ({metric})")}
        assert values - {None}, f"variable ${var['name']} would be empty"
    steps = {
        r["metric"]["horizon_step"]
        for r in stack.query(f'forecast_offline_mae{{model="{TINY_MODEL}"}}')
    }
    assert "1" in steps


def test_live_accuracy_joins_offline_mae(stack: Stack, traffic: None) -> None:
    # The ratio panel and the drift alert join live and offline MAE on (model, step).
    ratio = stack.query(
        'sum by (model, horizon_step) (rate(forecast_live_abs_error_total{horizon_step="1"}[1m]))'
        ' / sum by (model, horizon_step) (rate(forecast_live_scored_total{horizon_step="1"}[1m]))'
        ' / on (model, horizon_step) forecast_offline_mae{horizon_step="1"}'
    )
    assert [r["metric"]["model"] for r in ratio] == [TINY_MODEL]
    assert float(ratio[0]["value"][1]) > 0


def test_alert_rules_load_and_evaluate(stack: Stack, traffic: None) -> None:
    expected = {r["alert"] for r in alert_rules() if "alert" in r}
    deadline = time.monotonic() + 15
    while True:
        body = httpx.get(f"{stack.prometheus_url}/api/v1/rules", timeout=10).json()
        rules = {r["name"]: r for g in body["data"]["groups"] for r in g["rules"]}
        if rules.keys() == expected and all(r["health"] == "ok" for r in rules.values()):
            break
        assert time.monotonic() < deadline, {
            n: (r["health"], r.get("lastError")) for n, r in rules.items()
        }
        time.sleep(0.5)
    # The service is up and healthy: the availability alert must not fire.
    assert rules["ForecastServiceDown"]["state"] == "inactive"


@pytest.mark.parametrize(
    "promql",
    [
        'sum(forecast_http_requests_total{status="200"}) > 0',
        'sum(forecast_http_requests_total{status="400"}) > 0',
        'sum(forecast_http_requests_total{status="404"}) > 0',
        'sum(forecast_http_requests_total{status="409"}) > 0',
        'sum(forecast_http_requests_total{status="422"}) > 0',
        "sum(forecast_observations_total) > 0",
        "sum(forecast_duplicate_observations_total) > 0",
        "sum(forecast_gap_filled_total) > 0",
        "sum(forecast_stream_evictions_total) > 0",
        "sum(forecast_stream_expirations_total) > 0",
        "sum(forecast_live_streams) > 0",
        "sum(forecast_inference_duration_seconds_count) > 0",
        'sum(forecast_live_scored_total{horizon_step="2"}) > 0',
        'count(forecast_model_info{provider="CPUExecutionProvider"}) == 1',
        'sum(forecast_http_requests_total{route="/v2/models/{model}/infer",status="200"}) > 0',
    ],
)
def test_traffic_left_its_marks(stack: Stack, traffic: None, promql: str) -> None:
    # Non-empty panels could still be all zeros: the events the traffic caused must show.
    assert stack.query(promql), f"Prometheus does not see {promql!r}"
