"""Settings that only change where or how work runs, never an answer:
inline_max_rows_steps (small ORT calls inline on the loop) and proxy_headers."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from svc_helpers import SENSOR, held_out, obs_body

from service.engine.artifacts import load_artifact


@pytest.fixture
def loaded(models_dir: Path):
    model = load_artifact(models_dir / SENSOR / "1", ["CPUExecutionProvider"], 1)
    yield model
    model.runtime.close()


def test_small_calls_run_inline_large_ones_on_the_worker_thread(loaded) -> None:
    runtime = loaded.runtime
    spec = loaded.spec
    real_run = runtime.run
    on_loop_thread: list[bool] = []

    def spy(x: np.ndarray, state: np.ndarray) -> Any:
        on_loop_thread.append(threading.current_thread() is threading.main_thread())
        return real_run(x, state)

    runtime.run = spy  # type: ignore[method-assign]
    rng = np.random.default_rng(0)
    shapes = [(1, 1), (16, 1), (2, 8), (17, 1), (1, 17), (64, 1)]
    inputs = [
        (
            rng.normal(size=(b, t, spec.n_features)).astype(np.float32),
            rng.normal(size=(b, spec.state_size)).astype(np.float32),
        )
        for b, t in shapes
    ]

    async def run_all(inline_max: int) -> list[tuple[np.ndarray, np.ndarray]]:
        runtime.inline_max = inline_max
        out = []
        for x, state in inputs:
            forecast, new_state, _ = await runtime.run_async(x, state)
            out.append((forecast, new_state))
        return out

    default = asyncio.run(run_all(16))
    assert on_loop_thread == [True, True, True, False, False, False]
    on_loop_thread.clear()
    threaded = asyncio.run(run_all(0))
    assert on_loop_thread == [False] * len(shapes)
    on_loop_thread.clear()
    inline = asyncio.run(run_all(1_000_000))
    assert on_loop_thread == [True] * len(shapes)
    for a, b, c in zip(default, threaded, inline, strict=True):
        for k in range(2):
            np.testing.assert_array_equal(a[k], b[k])
            np.testing.assert_array_equal(a[k], c[k])


def test_inline_and_threaded_services_answer_the_same(models_dir: Path, serve) -> None:
    seconds, values = held_out(models_dir, SENSOR, 4)
    inline = serve(inline_max_rows_steps=1_000_000)
    threaded = serve(inline_max_rows_steps=0, snapshot_path="")
    assert inline.service.models[SENSOR].runtime.inline_max == 1_000_000
    assert threaded.service.models[SENSOR].runtime.inline_max == 0
    many = f"/v1/models/{SENSOR}/observations"
    with httpx.Client(base_url=inline.url) as a, httpx.Client(base_url=threaded.url) as b:
        for step in range(4):
            one = {"observations": [obs_body(seconds[step], values[step], step)]}
            path = f"/v1/models/{SENSOR}/streams/s/observations"
            ra, rb = a.post(path, json=one), b.post(path, json=one)
            assert ra.status_code == rb.status_code == 200
            assert ra.json() == rb.json()
            streams = {
                "streams": [
                    {
                        "stream_id": f"m{k}",
                        "observations": [obs_body(seconds[step], values[step] + k, step)],
                    }
                    for k in range(20)
                ]
            }
            ra, rb = a.post(many, json=streams), b.post(many, json=streams)
            assert ra.status_code == rb.status_code == 200
            assert ra.json() == rb.json()
        history = {"observations": [obs_body(seconds[k], values[k]) for k in range(4)]}
        path = f"/v1/models/{SENSOR}/forecast"
        assert a.post(path, json=history).json() == b.post(path, json=history).json()


def test_proxy_headers_setting_reaches_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    import service.__main__ as main_module

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(main_module, "configure_logging", lambda level: None)
    monkeypatch.setattr(main_module, "create_app", lambda settings: object())
    monkeypatch.setattr(main_module.uvicorn, "run", lambda app, **kw: calls.append(kw))
    monkeypatch.setenv("FORECAST_MODELS_DIR", "/nonexistent")
    assert main_module.main() == 0
    monkeypatch.setenv("FORECAST_PROXY_HEADERS", "true")
    assert main_module.main() == 0
    assert [c["proxy_headers"] for c in calls] == [False, True]
