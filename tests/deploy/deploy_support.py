"""Paths of the deployment files and the external binaries the deploy tests need."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERFILE_TRAIN = DEPLOY / "Dockerfile.train"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS_YML = DEPLOY / "prometheus" / "alerts.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD_JSON = GRAFANA / "dashboards" / "forecast.json"

# The name of the tiny sensor artifact the tests serve.
TINY_MODEL = "tiny-sensor"

# Debian's `prometheus` package puts both binaries here; PATH wins if set up otherwise.
_DEBIAN_BIN = {"prometheus": "/usr/bin/prometheus", "promtool": "/usr/bin/promtool"}


def require_binary(name: str) -> str:
    """The path of a binary the test needs; FAILS (never skips) when it is missing."""
    found = shutil.which(name) or (
        _DEBIAN_BIN[name] if Path(_DEBIAN_BIN.get(name, "/nonexistent")).exists() else None
    )
    if found is None:
        pytest.fail(
            f"`{name}` not found on PATH nor at {_DEBIAN_BIN.get(name)}: install the Debian "
            "package with `apt-get install -y prometheus` (.ci/run does).",
            pytrace=False,
        )
    return found


# --- Dockerfile -------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        pending += line
        keyword, _, args = pending.partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, f"{path}: dangling line continuation"
    return out


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in instructions:
        if keyword == "ENV":
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"ENV without '=': {args!r} (use the KEY=value form)"
                env[key] = value
    return env


def dockerfile_copy_sources(instructions: list[tuple[str, str]]) -> list[str]:
    """Sources of COPY/ADD from the build context (not --from= other stages)."""
    sources: list[str] = []
    for keyword, args in instructions:
        if keyword not in {"COPY", "ADD"}:
            continue
        words = shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        sources.extend(words[:-1])
    return sources


# --- Dashboard and PromQL ----------------------------------------------------------

# Values put in for Grafana's variables when a query is run outside Grafana.
GRAFANA_VARIABLES = {
    "__rate_interval": "15s",
    "__interval": "15s",
    "__range": "1m",
}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_JSON.read_text())


def dashboard_panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    panels: list[dict[str, Any]] = []
    for panel in dash["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_queries(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title / refId, PromQL) for every target of every panel."""
    queries = []
    for panel in dashboard_panels(dash):
        for target in panel.get("targets", []):
            if target.get("hide"):
                continue
            queries.append((f"{panel['title']} / {target['refId']}", target["expr"]))
    return queries


def substitute_variables(expr: str, dash: dict[str, Any]) -> str:
    """Replace Grafana variables: built-ins by GRAFANA_VARIABLES, the dashboard's own by
    their "All" value (.*), so the query covers every model and horizon step."""
    values = dict(GRAFANA_VARIABLES)
    for var in dash.get("templating", {}).get("list", []):
        values[var["name"]] = var.get("allValue") or ".*"

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"unknown Grafana variable ${name} in {expr!r}"
        return values[name]

    out = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)
    assert "$" not in out, out
    return out


_PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "group_left",
    "group_right", "rate", "irate", "increase", "histogram_quantile", "max_over_time",
    "absent", "and", "or", "unless", "le", "bool", "offset", "vector", "scalar",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (anything forecast_*, plus up)."""
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    names = set(re.findall(r"\b(forecast_[a-z0-9_]+|up)\b", without_labels))
    return names - _PROMQL_WORDS


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load(ALERTS_YML.read_text())
    return [r for g in rules["groups"] for r in g["rules"]]


def exposed_sample_names(metrics_text: str) -> set[str]:
    """Sample names in a Prometheus text exposition (..._bucket, ..._total, ...)."""
    names = set()
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


# --- Processes and traffic ---------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop one process we started: SIGTERM (graceful), then SIGKILL, by its pid only."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


def wait_http_ok(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def running_service(
    models_dir: Path, log_dir: Path, env: dict[str, str] | None = None
) -> Iterator[str]:
    """`python -m service` on 127.0.0.1 and a free port, ready; yields its base URL.
    Stopped by pid on exit (SIGTERM first: a graceful stop)."""
    port = free_port()
    log_path = log_dir / f"service-{port}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FORECAST_")}
    full_env |= {
        "FORECAST_SNAPSHOT_PATH": "",
        "FORECAST_LOG_LEVEL": "warning",
        "FORECAST_AUTH_DISABLED": "true",  # these tests are about metrics, not keys
        **(env or {}),
        "FORECAST_HOST": "127.0.0.1",
        "FORECAST_PORT": str(port),
        "FORECAST_MODELS_DIR": str(models_dir),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service"], cwd=ROOT, env=full_env, stdout=log, stderr=log
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/readyz", proc, log_path, timeout=30)
        yield url
    finally:
        stop_process(proc)


SENSOR_START = datetime(2014, 6, 1, tzinfo=UTC)
SENSOR_STEP = timedelta(minutes=30)


def sensor_observation(i: int) -> dict[str, Any]:
    """The i-th half-hour of a plausible Victorian demand/temperature day."""
    hour = (i % 48) / 2
    demand = 4200.0 + 900.0 * math.sin(2 * math.pi * (hour - 9) / 24)
    temperature = 14.0 + 5.0 * math.sin(2 * math.pi * (hour - 10) / 24)
    ts = (SENSOR_START + i * SENSOR_STEP).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"ts": ts, "seq": i, "values": [round(demand, 1), round(temperature, 1)]}


class Traffic:
    """Sends what a real producer sends, good and bad, so every series gets data."""

    def __init__(self, client: httpx.Client, model: str) -> None:
        self.client = client
        self.model = model
        self.next_index: dict[str, int] = {}
        self.last: dict[str, dict[str, Any]] = {}  # the last answer of each stream

    def _post(self, stream: str, observations: list[dict[str, Any]]) -> httpx.Response:
        return self.client.post(
            f"/v1/models/{self.model}/streams/{stream}/observations",
            json={"observations": observations},
        )

    def step(self, stream: str, skip: int = 0) -> httpx.Response:
        """The stream's next observation (after `skip` missing periods); must succeed."""
        i = self.next_index.get(stream, 0) + skip
        response = self._post(stream, [sensor_observation(i)])
        assert response.status_code == 200, response.text
        self.next_index[stream] = i + 1
        self.last[stream] = response.json()
        return response

    def retry_last(self, stream: str) -> None:
        """A client retry of the last observation: same answer, no second step."""
        first = self.next_index[stream] - 1
        status = self.client.get(f"/v1/models/{self.model}/streams/{stream}")
        assert status.status_code == 200, status.text
        response = self._post(stream, [sensor_observation(first)])
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["duplicate"] is True and answer["forecast"] == self.last[stream]["forecast"]
        assert (answer["seq"], answer["ts"]) == (self.last[stream]["seq"], self.last[stream]["ts"])
        after = self.client.get(f"/v1/models/{self.model}/streams/{stream}").json()
        assert after["count"] == status.json()["count"]  # no second step

    def errors(self) -> None:
        """One of each client mistake; each must be refused with its status."""
        c, m = self.client, self.model
        JSON = {"content-type": "application/json"}
        bad = sensor_observation(0) | {"values": [1.0]}  # one value, two inputs expected
        expected = [
            (c.post("/v1/models/no-such-model/streams/x/observations", json={}), 404),
            (c.get("/v1/models/no-such-model"), 404),
            (c.post(f"/v1/models/{m}/streams/bad/observations", json={"observations": [bad]}), 422),
            (
                c.post(
                    f"/v1/models/{m}/streams/bad/observations", content=b"{not json", headers=JSON
                ),
                400,
            ),
        ]
        for response, status in expected:
            assert response.status_code == status, (status, response.text)

    def kserve_v2(self, stream: str) -> None:
        """Two steps of a stream over the Open Inference Protocol (JSON tensors)."""
        for i in range(2):
            obs = sensor_observation(i)
            body = {
                "parameters": {"sequence_id": stream, "sequence_seq": i},
                "inputs": [
                    {"name": "INPUT", "shape": [1, 1, 2], "datatype": "FP32",
                     "data": obs["values"]},
                    {"name": "TS", "shape": [1, 1], "datatype": "BYTES", "data": [obs["ts"]]},
                ],
            }  # fmt: skip
            response = self.client.post(f"/v2/models/{self.model}/infer", json=body)
            assert response.status_code == 200, response.text

    def out_of_order(self, stream: str) -> None:
        response = self._post(stream, [sensor_observation(0)])
        assert response.status_code == 409, response.text

    def burst(self, streams: int, steps: int, prefix: str = "s") -> None:
        """Several streams stepped in order: live accuracy gets scored, the stream cap
        evicts, then a retry, a gap and an out-of-order observation on the last one."""
        for n in range(streams):
            stream = f"{prefix}{n}"
            for _ in range(steps):
                self.step(stream)
        self.retry_last(stream)
        self.step(stream, skip=2)
        self.out_of_order(stream)
        self.errors()
        self.kserve_v2("v2-stream")
        assert self.client.get("/v1/models").status_code == 200
        assert self.client.get(f"/v1/models/{self.model}").status_code == 200
