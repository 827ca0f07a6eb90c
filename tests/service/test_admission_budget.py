"""The admission budget: rows in flight bounded by the measured drain rate times the
target time, whole refusals before any work, reservations before parsing, and the
deadline of a request that waited for its stream. Clocks are injected: nothing here
depends on how fast the machine is."""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from svc_helpers import SENSOR, LiveServer, held_out, make_settings, obs_body
from test_admission import MANY, STREAM, Gate, _entries, _until

from service import bulk
from service.app import create_app
from service.engine.admission import WINDOW_SECONDS, Admission
from service.errors import QueueFull
from service.metrics import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _admission(clock: Clock, limit: int = 10_000, floor: int = 10) -> Admission:
    metrics = Metrics().for_model("m", 3)
    return Admission(limit, metrics, seconds=0.5, deadline=1.0, floor=floor, clock=clock)


def test_the_bound_follows_the_measured_drain_rate() -> None:
    clock = Clock()
    adm = _admission(clock)
    assert adm.limit == 10_000 and adm.rate is None  # nothing measured: the configured bound
    # 400 rows answered over one window of busy time: 400 / 0.25 s = 1600 rows/s.
    ticket = adm.reserve(400)
    clock.now += WINDOW_SECONDS
    adm.release(ticket)
    assert adm.rate == pytest.approx(400 / WINDOW_SECONDS)
    assert adm.limit == int(adm.rate * 0.5)  # what drains in admission_seconds
    # Idle time is not busy time: a long pause between requests leaves the rate alone.
    clock.now += 60
    ticket = adm.reserve(400)
    clock.now += WINDOW_SECONDS
    adm.release(ticket)
    assert adm.rate == pytest.approx(400 / WINDOW_SECONDS)
    # A model that got slower (smoothed over windows): the bound shrinks with it...
    ticket = adm.reserve(1)
    clock.now += 100 * WINDOW_SECONDS
    adm.release(ticket)
    assert adm.limit == int(adm.rate * 0.5) < 800
    # ... but never below the floor.
    for _ in range(20):
        ticket = adm.reserve(1)
        clock.now += 100 * WINDOW_SECONDS
        adm.release(ticket)
    assert adm.limit == 10
    # And never above the configured rows, however fast the model.
    for _ in range(20):
        big = adm.reserve(10)
        adm.grow(big, 1_000_000)  # alone in flight: admitted although larger than the bound
        clock.now += WINDOW_SECONDS
        adm.release(big)
    assert adm.limit == 10_000


def test_a_full_budget_refuses_whole_and_holds_nothing() -> None:
    clock = Clock()
    adm = _admission(clock, limit=100)
    first = adm.reserve(80)
    with pytest.raises(QueueFull) as info:
        adm.reserve(30)
    assert info.value.headers()["Retry-After"] == "1"
    assert adm.held == 80  # the refused request took nothing
    # A reservation that fits, whose exact cost then does not: refused whole, and its
    # reservation is given back at once (and not counted as work done).
    second = adm.reserve(10)
    with pytest.raises(QueueFull):
        adm.grow(second, 40)
    assert adm.held == 80 and second.cost == 0
    adm.release(second)  # the owner's release after a refusal changes nothing
    assert adm.held == 80
    # A smaller exact cost gives the difference back.
    third = adm.reserve(20)
    adm.grow(third, 5)
    assert adm.held == 85
    adm.release(third)
    adm.release(first)
    assert adm.held == 0


def test_hold_with_a_ticket_tops_it_up_and_leaves_the_release_to_its_owner() -> None:
    adm = _admission(Clock(), limit=100)
    ticket = adm.reserve(10)
    with adm.hold(30, ticket):
        assert adm.held == 30
    assert adm.held == 30  # still the owner's until it answered
    adm.release(ticket)
    with adm.hold(7):
        assert adm.held == 7
    assert adm.held == 0


def test_late_is_measured_from_admission() -> None:
    clock = Clock()
    adm = _admission(clock)
    ticket = adm.reserve(1)
    clock.now += 1.0
    assert not adm.late(ticket)
    clock.now += 0.01
    assert adm.late(ticket)


@pytest.fixture
def pool() -> Any:
    with ThreadPoolExecutor(8) as p:
        yield p


def test_a_request_that_waited_past_the_deadline_for_its_stream_is_refused_before_any_work(
    models_dir: Path, serve: Callable[..., LiveServer], pool: ThreadPoolExecutor
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)
    server = serve(inline_max_rows_steps=0, queue_deadline_seconds=1.0)
    model = server.service.models[SENSOR]
    clock = Clock()
    model.admission.clock = clock
    gate = Gate(server)
    url = STREAM.format(model=SENSOR, sid="late")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        bodies = [{"observations": [obs_body(seconds[k], values[k], k)]} for k in (0, 1)]
        first = pool.submit(c.post, url, json=bodies[0])
        gate.wait_started()  # holds the stream's lock while the model is stuck
        second = pool.submit(c.post, url, json=bodies[1])
        _until(server, lambda m: len(m.locks._busy.get("late") or ()) == 1)
        clock.now += 1.5  # the waiting request is past its deadline when its turn comes
        calls = gate.calls
        gate.open()
        assert first.result().status_code == 200
        r = second.result()
        assert r.status_code == 503 and r.json()["error"]["code"] == "queue_full"
        assert r.headers["Retry-After"] == "1"
        assert gate.calls == calls  # the late request never reached the model
        status = c.get(f"/v1/models/{SENSOR}/streams/late").json()
        assert status["count"] == 1 and status["seq"] == 0
        assert model.admission.held == 0 and not model.locks.busy("late")
        # Its retry is admitted and applied.
        r = c.post(url, json={"observations": [obs_body(seconds[1], values[1], 1)]})
        assert r.status_code == 200


def test_a_measured_budget_refuses_the_next_request_whole_before_it_is_parsed(
    models_dir: Path,
    serve: Callable[..., LiveServer],
    pool: ThreadPoolExecutor,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 1)
    server = serve(
        inline_max_rows_steps=0, admission_rows=10_000, max_batch_rows=4, admission_seconds=0.5
    )
    model = server.service.models[SENSOR]
    clock = Clock()
    model.admission.clock = clock
    # The model measured 16 rows/s: 0.5 s of work is 8 rows (the floor is max_batch_rows).
    server.call(lambda: _measure(model.admission, clock, rows=4))
    assert model.admission.limit == 8
    gate = Gate(server)
    parsed: list[int] = []
    real_parse = bulk.parse_many_body

    def counting_parse(*args: Any, **kwargs: Any) -> Any:
        parsed.append(1)
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(bulk, "parse_many_body", counting_parse)
    ids_a = [f"a{k}" for k in range(6)]
    with httpx.Client(base_url=server.url, timeout=30) as c:
        first = pool.submit(c.post, MANY, json=_entries(seconds, values, ids_a))
        gate.wait_started()  # 6 of 8 rows in flight
        calls = gate.calls
        r = c.post(MANY, json=_entries(seconds, values, [f"b{k}" for k in range(6)]))
        assert r.status_code == 503 and r.json()["error"]["code"] == "queue_full"
        gate.open()
        assert first.result().status_code == 200
        assert gate.calls > calls and len(parsed) == 1  # the first request's body alone
        for k in range(6):
            assert c.get(f"/v1/models/{SENSOR}/streams/b{k}").status_code == 404


def _measure(adm: Admission, clock: Clock, rows: int) -> None:
    ticket = adm.reserve(rows)
    clock.now += WINDOW_SECONDS
    adm.release(ticket)


def test_concurrent_reservations_only_parse_what_fits(
    models_dir: Path, serve: Callable[..., LiveServer]
) -> None:
    """Two bodies that both passed the cheap check before either was read: the second
    reservation (taken once its body arrived, before parsing) is refused, so it is
    never parsed; what passed the check is not admitted by that alone."""
    server = serve(admission_rows=300)
    adm = server.service.models[SENSOR].admission
    done = threading.Event()

    def burst() -> tuple[int, int]:
        adm.check(200)
        adm.check(200)  # both pass: nothing is held yet
        first = adm.reserve(200)
        try:
            adm.reserve(200)
        except QueueFull:
            refused = 1
        else:
            refused = 0
        held = adm.held
        adm.release(first)
        done.set()
        return refused, held

    assert server.call(burst) == (1, 200)
    assert done.is_set()


def test_the_objects_built_at_start_are_kept_out_of_the_cyclic_gc(
    models_dir: Path, tmp_path: Path
) -> None:
    """A full GC pass over everything loaded at start stalled the event loop (and so the
    probes) for ~100 ms; after start it only ever scans what requests created."""
    app = create_app(make_settings(models_dir, tmp_path))

    async def start() -> int:
        gc.unfreeze()
        assert gc.get_freeze_count() == 0
        async with app.router.lifespan_context(app):
            return gc.get_freeze_count()

    try:
        assert asyncio.run(start()) > 10_000
    finally:
        gc.unfreeze()


def test_probes_are_answered_by_the_protocol_even_when_the_app_cannot_run(
    serve: Callable[..., LiveServer],
) -> None:
    """The probes never become tasks queued behind request work: with every ASGI call
    stuck, /healthz and /readyz still answer (keep-alive and Connection: close both),
    are counted, and a foreign Host still gets the guard's 400 (through the app)."""
    server = serve(allowed_hosts=["localhost", "127.0.0.1"], metrics_public=True)
    front = server.app.front
    stuck = threading.Event()

    async def stuck_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] != "/metrics":
            stuck.set()
            await asyncio.Event().wait()  # never: no request task can answer
        await front(scope, receive, send)

    server.app.front = stuck_app
    with httpx.Client(base_url=server.url, timeout=10) as c:
        for _ in range(3):  # on one keep-alive connection
            assert c.get("/healthz").json() == {"status": "ok"}
            assert c.get("/readyz").json()["status"] == "ready"
        r = c.get("/healthz", headers={"Connection": "close"})
        assert r.status_code == 200 and r.headers["connection"] == "close"
        assert not stuck.is_set()
        text = c.get("/metrics").text
        line = 'forecast_http_requests_total{method="GET",route="/healthz",status="200"} 4.0'
        assert line in text
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: attacker.example\r\n\r\n")
        assert stuck.wait(10)  # a foreign Host is not the protocol's to answer: the app's
    server.app.front = front
    r = httpx.get(f"{server.url}/healthz", headers={"Host": "attacker.example"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "bad_host"
