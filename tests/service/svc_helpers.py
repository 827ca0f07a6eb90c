"""Helpers shared by the service tests: live servers, held-out data, the offline reference."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import uvicorn

from service.app import create_app
from service.settings import Settings
from service.transport.server import uvicorn_config

SENSOR = "tiny-sensor"
STOCK = "tiny-stock"


def manifest(models_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((models_dir / name / "1" / "manifest.json").read_text())


class LiveServer:
    """create_app(settings) served by a real uvicorn on 127.0.0.1 in a thread."""

    def __init__(self, settings: Settings) -> None:
        self.app = create_app(settings)
        self.settings = settings
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        config = uvicorn_config(self.app, settings, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]})
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def service(self) -> Any:
        return self.app.state.service

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()
        assert not self.thread.is_alive()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run fn on the server's event loop thread and return its result."""
        loop = self.server_loop()
        fut: asyncio.Future[Any] = asyncio.run_coroutine_threadsafe(_call(fn), loop)  # type: ignore[assignment]
        return fut.result(timeout=10)

    def server_loop(self) -> asyncio.AbstractEventLoop:
        model = next(iter(self.service.models.values()))
        task = model.batcher._task
        assert task is not None
        return task.get_loop()


async def _call(fn: Callable[[], Any]) -> Any:
    return fn()


def make_settings(models: Path, tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "models_dir": models,
        "snapshot_path": tmp / "snapshot.npz",
        "max_gap_steps": 4,
        "accuracy_sample_fraction": 1.0,
        # Most tests are about the API, not about keys: the auth tests turn it on.
        "auth_disabled": True,
    }
    values.update(overrides)
    return Settings(**values)


# -- data and the offline reference --------------------------------------------------


def held_out(models_dir: Path, name: str, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """(epoch seconds, inputs [n, n_inputs]) from the model's test split."""
    from training import data

    m = manifest(models_dir, name)
    series = data.vic_elec() if m["data"]["dataset"] == "vic_elec" else data.sp500()
    start, end = m["data"]["split"]["test"]
    frame = series.frame.loc[start:end, m["inputs"]].iloc[:rows]
    seconds = frame.index.values.astype("datetime64[s]").astype(np.int64).astype(np.float64)
    return seconds, frame.to_numpy(dtype=np.float64)


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def design(m: dict[str, Any], seconds: np.ndarray, values: np.ndarray) -> np.ndarray:
    """The graph's x per docs/artifact.md, computed independently of the service."""
    cols = []
    for feat in m["features"]:
        if feat["source"] == "input":
            cols.append(values[:, m["inputs"].index(feat["name"])])
        else:
            period = float(feat["period_seconds"])
            angle = 2 * np.pi * np.mod(seconds, period) / period
            cols.append(np.sin(angle) if feat["function"] == "sin" else np.cos(angle))
    return np.stack(cols, axis=1).astype(np.float32)


def offline_forecast(models_dir: Path, name: str, x: np.ndarray) -> np.ndarray:
    """ORT directly on the graph, the whole history as ONE sequence from zero state."""
    m = manifest(models_dir, name)
    sess = ort.InferenceSession(
        str(models_dir / name / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    feed: dict[str, np.ndarray] = {"x": x[None]}
    for entry in m["state"]:
        feed[entry["input"]] = np.zeros([1, *entry["shape"]], dtype=np.float32)
    return sess.run([m["graph"]["output"]], feed)[0][0]


def obs_body(seconds: float, values: np.ndarray | list[float], seq: int | None = None) -> dict:
    body: dict[str, Any] = {"ts": iso(seconds), "values": [float(v) for v in values]}
    if seq is not None:
        body["seq"] = seq
    return body


def median_index(m: dict[str, Any]) -> int:
    """The quantile closest to 0.5 (docs/artifact.md: the median a gap is filled with)."""
    return int(np.argmin([abs(q - 0.5) for q in m["quantiles"]]))


class RuntimeGate:
    """Fault injection: the model's ORT calls whose input `holds(x)` wait until the test
    releases them, so a test decides what is in flight instead of racing the clock.
    Only calls that run on the model's worker thread may be held (settings
    inline_max_rows_steps=0, or a history longer than it); `entered` is set when one is."""

    def __init__(self, runtime: Any, holds: Callable[[np.ndarray], bool] = lambda x: True):
        self.entered = threading.Event()
        self.release = threading.Event()
        self._runtime = runtime
        self._real = runtime.run

        def gated(x: np.ndarray, state: np.ndarray) -> Any:
            if holds(x):
                self.entered.set()
                if not self.release.wait(30):
                    raise RuntimeError("the test never released the gate")
            return self._real(x, state)

        runtime.run = gated

    def restore(self) -> None:
        self.release.set()
        self._runtime.run = self._real


def wait_until(condition: Callable[[], bool], what: str, limit_s: float = 30.0) -> None:
    """Poll a condition the test controls (not a duration): fails only if it never holds."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.005)


def metric_samples(url: str) -> dict[str, float]:
    """Every sample of the server's /metrics: 'name{labels}' -> value."""
    text = httpx.get(f"{url}/metrics").text
    return {
        key: float(value)
        for key, _, value in (line.rpartition(" ") for line in text.splitlines())
        if key and not key.startswith("#")
    }


def queue_depth(server: LiveServer, model: str = SENSOR) -> float:
    """Rows waiting in the model's batch queue, as /metrics reports them."""
    return metric_samples(server.url)[f'forecast_queue_depth{{model="{model}"}}']
