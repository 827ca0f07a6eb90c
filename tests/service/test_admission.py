"""Admission control: whole requests or none, caps checked before any work, bounded
waiting per stream, and probes that answer while the model is stuck.

The model is held still by a gate (fault injection: ORT waits on an event in the
worker thread), so what is in flight is known without any timing assumption.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from svc_helpers import SENSOR, LiveServer, held_out, iso, obs_body

STREAM = "/v1/models/{model}/streams/{sid}/observations"
MANY = f"/v1/models/{SENSOR}/observations"


class Gate:
    """Holds every ORT call until opened; counts the calls that started."""

    def __init__(self, server: LiveServer) -> None:
        self.runtime = server.service.models[SENSOR].runtime
        self.real = self.runtime.run
        self.open_ = threading.Event()
        self.started = threading.Semaphore(0)
        self.calls = 0

        def held(x: Any, state: Any) -> Any:
            self.calls += 1
            self.started.release()
            assert self.open_.wait(30)
            return self.real(x, state)

        self.runtime.run = held

    def wait_started(self) -> None:
        assert self.started.acquire(timeout=30)

    def open(self) -> None:
        self.open_.set()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(8) as p:
        yield p


def _until(server: LiveServer, check: Callable[[Any], bool]) -> None:
    """Wait until check(model) holds on the server's loop (an event, not a duration)."""
    model = server.service.models[SENSOR]
    deadline = time.monotonic() + 30
    while not server.call(lambda: check(model)):
        assert time.monotonic() < deadline
        time.sleep(0.005)


def _entries(seconds: Any, values: Any, ids: list[str]) -> dict[str, Any]:
    return {
        "streams": [
            {"stream_id": s, "observations": [obs_body(seconds[0], values[0])]} for s in ids
        ]
    }


def test_a_request_that_does_not_fit_is_refused_whole_before_any_work(
    models_dir: Path, serve: Callable[..., LiveServer], pool: ThreadPoolExecutor
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)
    server = serve(admission_rows=4, inline_max_rows_steps=0)
    gate = Gate(server)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        first: Future[httpx.Response] = pool.submit(
            c.post, MANY, json=_entries(seconds, values, ["a", "b", "c"])
        )
        gate.wait_started()  # 3 of 4 rows admitted and in the model
        r = c.post(MANY, json=_entries(seconds, values, ["d", "e"]))
        assert r.status_code == 503 and r.headers["Retry-After"] == "1"
        assert r.json()["error"]["code"] == "queue_full"
        calls = gate.calls
        gate.open()
        assert first.result().status_code == 200
        assert gate.calls == calls  # the refused request never reached the model
        for sid in ("d", "e"):
            assert c.get(f"/v1/models/{SENSOR}/streams/{sid}").status_code == 404
        # Nothing in flight: the same request is admitted now.
        assert c.post(MANY, json=_entries(seconds, values, ["d", "e"])).status_code == 200


def test_a_saturated_model_refuses_before_reading_the_body(
    models_dir: Path, serve: Callable[..., LiveServer], pool: ThreadPoolExecutor
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)
    server = serve(admission_rows=2, inline_max_rows_steps=0)
    gate = Gate(server)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        first = pool.submit(c.post, MANY, json=_entries(seconds, values, ["a", "b"]))
        gate.wait_started()
        # Not even valid JSON: a saturated model answers 503 without parsing it.
        r = c.post(MANY, content=b"{", headers={"content-type": "application/json"})
        assert r.status_code == 503 and r.json()["error"]["code"] == "queue_full"
        # The probes answer while the model is stuck: they never queue behind it.
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200
        gate.open()
        assert first.result().status_code == 200


def test_more_model_steps_than_the_cap_is_413_before_any_step(
    models_dir: Path, serve: Callable[..., LiveServer]
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 1)
    server = serve(max_steps_per_request=10, max_gap_steps=48)
    gate = Gate(server)
    gate.open()
    period = 1800.0
    t0 = seconds[0]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        url = STREAM.format(model=SENSOR, sid="steps")
        assert c.post(url, json={"observations": [obs_body(t0, values[0])]}).status_code == 200
        calls = gate.calls
        # Three observations 5 periods apart: 3 + 12 filled = 15 steps > 10.
        obs = [obs_body(t0 + 5 * k * period, values[0]) for k in (1, 2, 3)]
        r = c.post(url, json={"observations": obs})
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_steps"
        assert gate.calls == calls
        assert c.get(f"/v1/models/{SENSOR}/streams/steps").json()["count"] == 1
        # The stateless forecast has the same cap.
        r = c.post(f"/v1/models/{SENSOR}/forecast", json={"observations": obs})
        assert r.status_code == 413 and gate.calls == calls
        # A multi-stream request is capped as a whole: 4 entries of 4 steps each.
        many = {
            "streams": [
                {
                    "stream_id": f"m{k}",
                    "observations": [obs_body(t0 + p * period, values[0]) for p in (0, 3)],
                }
                for k in range(4)
            ]
        }
        r = c.post(MANY, json=many)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_steps"
        assert gate.calls == calls
        assert c.get(f"/v1/models/{SENSOR}/streams/m0").status_code == 404


def test_an_answer_past_the_cap_is_413_before_any_work(
    models_dir: Path, serve: Callable[..., LiveServer]
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 1)
    server = serve(max_answer_bytes=65536)
    ids = [f"s{k}" for k in range(200)]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        r = c.post(MANY, json=_entries(seconds, values, ids))
        assert r.status_code == 413 and r.json()["error"]["code"] == "answer_too_large"
        assert c.get(f"/v1/models/{SENSOR}/streams/s0").status_code == 404
        # Asking for less forecast fits: the estimate follows the detail asked for.
        r = c.post(MANY, json={**_entries(seconds, values, ids), "forecast": "none"})
        assert r.status_code == 200 and len(r.content) < 65536
        # Bad entries are bounded too: 1 KB of them cannot make a large answer.
        r = c.post(MANY, json={"streams": [{}] * 600, "forecast": "none"})
        assert r.status_code == 413


def test_requests_flooding_one_stream_wait_in_a_bounded_queue(
    models_dir: Path, serve: Callable[..., LiveServer], pool: ThreadPoolExecutor
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 8)
    server = serve(max_waiting_per_stream=2, inline_max_rows_steps=0)
    gate = Gate(server)
    url = STREAM.format(model=SENSOR, sid="flood")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        bodies = [{"observations": [obs_body(seconds[k], values[k], k)]} for k in range(4)]
        running = pool.submit(c.post, url, json=bodies[0])
        gate.wait_started()  # the stream's lock is held while the model is stuck
        waiting = [pool.submit(c.post, url, json=b) for b in bodies[1:3]]
        _until(server, lambda m: len(m.locks._busy.get("flood") or ()) == 2)
        r = c.post(url, json=bodies[3])
        assert r.status_code == 429 and r.json()["error"]["code"] == "stream_busy"
        assert "Retry-After" in r.headers
        gate.open()
        assert running.result().status_code == 200
        # Either arrival order: both apply, or the later seq first and the earlier is 409.
        assert sorted(f.result().status_code for f in waiting) in ([200, 200], [200, 409])


def test_entry_rejections_are_counted_by_reason(client: httpx.Client, models_dir: Path) -> None:
    seconds, values = held_out(models_dir, SENSOR, 1)
    body = {
        "streams": [
            {"stream_id": "ok", "observations": [obs_body(seconds[0], values[0])]},
            {"stream_id": "bad/id", "observations": [obs_body(seconds[0], values[0])]},
            {"stream_id": "x", "observations": [{"ts": iso(seconds[0]), "values": ["a", 1]}]},
        ]
    }
    r = client.post(MANY, json=body)
    assert [e.get("status", 200) for e in r.json()["results"]] == [200, 422, 422]
    assert "stream_id" not in r.json()["results"][1] or r.json()["results"][1]["stream_id"] is None
    text = client.get("/metrics").text
    line = f'forecast_entry_rejections_total{{model="{SENSOR}",reason="invalid_input"}} 2.0'
    assert line in text
