"""The Redis state backend with a real redis-server: replicas share streams, a write is
applied once however replicas race, one script call per batch, and Redis down is a 503
with Retry-After (readiness false) from which the service recovers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from redis_helpers import RedisServer
from svc_helpers import SENSOR, LiveServer, held_out, obs_body

STREAM = "/v1/models/{model}/streams/{sid}/observations"
MANY = f"/v1/models/{SENSOR}/observations"


def post(c: httpx.Client, sid: str, obs: list[dict], **extra: Any) -> httpx.Response:
    return c.post(STREAM.format(model=SENSOR, sid=sid), json={"observations": obs, **extra})


def replica(serve: Callable[..., LiveServer], redis_server: RedisServer, **kw: Any) -> LiveServer:
    return serve(state_backend="redis", redis_url=redis_server.url, snapshot_path="", **kw)


def forecast(r: httpx.Response) -> np.ndarray:
    assert r.status_code == 200, r.text
    return np.array(r.json()["forecast"]["values"], dtype=np.float64)


def round_trips(redis_server: RedisServer) -> int:
    with redis_server.client() as r:
        stats = r.info("commandstats")
    # Reads (MGET) and script calls that ran: a first EVALSHA fails with NOSCRIPT and is
    # sent again as EVAL, which counts once.
    return sum(
        int(v["calls"]) - int(v.get("failed_calls", 0)) - int(v.get("rejected_calls", 0))
        for k, v in stats.items()
        if k in {"cmdstat_evalsha", "cmdstat_eval", "cmdstat_mget"}
    )


def test_a_stream_started_on_one_replica_continues_on_another(
    models_dir: Path, serve: Callable[..., LiveServer], redis_server: RedisServer
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 40)
    reference = serve()  # one process, memory backend
    a, b = replica(serve, redis_server), replica(serve, redis_server)
    with httpx.Client(timeout=30) as c, httpx.Client(base_url=reference.url) as ref:
        for i in range(40):
            obs = [obs_body(seconds[i], values[i], seq=i)]
            want = forecast(post(ref, "s", obs))
            # Alternate in runs: A, then B (cache miss: loads), then A again (stale cache).
            target = a if (i // 7) % 2 == 0 else b
            got = forecast(c.post(target.url + STREAM.format(model=SENSOR, sid="s"),
                                  json={"observations": obs}))  # fmt: skip
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        # A retry of the last observation on the other replica is a duplicate, not a step.
        last = [obs_body(seconds[39], values[39], seq=39)]
        other = a if target is b else b
        r = c.post(other.url + STREAM.format(model=SENSOR, sid="s"), json={"observations": last})
        assert r.status_code == 200 and r.json()["duplicate"] is True
        np.testing.assert_allclose(forecast(r), want, rtol=1e-5, atol=1e-5)
        # Going backwards is refused on either replica; status reads the record.
        back = [obs_body(seconds[30], values[30], seq=30)]
        for rep in (a, b):
            r = c.post(rep.url + STREAM.format(model=SENSOR, sid="s"), json={"observations": back})
            assert r.status_code == 409, r.text
            st = c.get(f"{rep.url}/v1/models/{SENSOR}/streams/s").json()
            assert st["count"] == 40 and st["seq"] == 39
        # Forget on one replica is seen by the other.
        assert c.delete(f"{a.url}/v1/models/{SENSOR}/streams/s").status_code == 200
        assert c.get(f"{b.url}/v1/models/{SENSOR}/streams/s").status_code == 404


def test_a_stream_back_from_another_replica_restarts_its_accuracy_ring(
    models_dir: Path, serve: Callable[..., LiveServer], redis_server: RedisServer
) -> None:
    """A replica's ring of a sampled stream's forecasts is its own; after the stream ran
    on another replica, the old ring would score forecasts against the wrong steps."""
    seconds, values = held_out(models_dir, SENSOR, 9)
    a, b = replica(serve, redis_server), replica(serve, redis_server)  # every stream sampled
    rings = a.service.models[SENSOR].accuracy._rings
    with httpx.Client(timeout=30) as c:
        for i in range(9):
            target = b if 3 <= i < 6 else a  # A, then B for three steps, then A again
            r = c.post(target.url + STREAM.format(model=SENSOR, sid="acc"),
                       json={"observations": [obs_body(seconds[i], values[i], seq=i)]})  # fmt: skip
            assert r.status_code == 200, r.text
            if i == 2:
                assert rings["acc"].step == 3
    assert rings["acc"].step == 3  # restarted at step 6 (not 3 + 3 steps it never saw)


def test_multi_stream_requests_span_replicas_like_one_process(
    models_dir: Path, serve: Callable[..., LiveServer], redis_server: RedisServer
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 12)
    reference = serve()
    a, b = replica(serve, redis_server), replica(serve, redis_server)
    sids = [f"m{k}" for k in range(30)]
    with httpx.Client(timeout=30) as c:
        for i in range(12):
            body = {"streams": [
                {"stream_id": sid, "observations": [obs_body(seconds[i], values[i] + k, seq=i)]}
                for k, sid in enumerate(sids)
            ]}  # fmt: skip
            want = c.post(reference.url + MANY, json=body).json()["results"]
            got = c.post((a if i % 3 else b).url + MANY, json=body).json()["results"]
            for w, g in zip(want, got, strict=True):
                assert g["stream_id"] == w["stream_id"] and "error" not in g, g
                np.testing.assert_allclose(
                    g["forecast"]["values"], w["forecast"]["values"], rtol=1e-5, atol=1e-5
                )


def test_one_script_call_writes_a_whole_multi_stream_batch(
    models_dir: Path, serve: Callable[..., LiveServer], redis_server: RedisServer
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)
    a = replica(serve, redis_server)
    with httpx.Client(base_url=a.url, timeout=30) as c:
        for i in range(2):  # new streams (planned jobs), then the vectorised lane
            body = {"streams": [
                {"stream_id": f"w{k}", "observations": [obs_body(seconds[i], values[i], seq=i)]}
                for k in range(50)
            ]}  # fmt: skip
            before = round_trips(redis_server)
            r = c.post(MANY, json=body)
            assert r.status_code == 200 and all("error" not in x for x in r.json()["results"])
            # New streams: one read (cache misses) + one write; known streams: one write.
            assert round_trips(redis_server) - before == (2 if i == 0 else 1)
    with redis_server.client() as r:
        keys = r.keys("fc:*")
        ttl = r.ttl(keys[0])
    assert len(keys) == 50 and all(k.startswith(b"fc:{" + SENSOR.encode() + b":w") for k in keys)
    assert 0 < ttl <= a.settings.stream_ttl_seconds


def test_one_observation_on_a_cached_stream_is_one_round_trip(
    models_dir: Path, serve: Callable[..., LiveServer], redis_server: RedisServer
) -> None:
    """The cache is trusted on a hit: no read before the step, only the conditional
    write (a conflict would reload; the race tests below prove that path)."""
    seconds, values = held_out(models_dir, SENSOR, 6)
    a = replica(serve, redis_server)
    with httpx.Client(base_url=a.url, timeout=30) as c:
        counts = []
        for i in range(6):
            before = round_trips(redis_server)
            assert post(c, "rt", [obs_body(seconds[i], values[i], seq=i)]).status_code == 200
            counts.append(round_trips(redis_server) - before)
    # A new stream: one read (absent) + one write; then one write per observation.
    assert counts == [2, 1, 1, 1, 1, 1]


def _gate_first_persist(servers: list[LiveServer]) -> threading.Barrier:
    """Hold each replica's first write until every replica has planned and stepped: both
    then write from the same stored version, so exactly one of them may win."""
    barrier = threading.Barrier(len(servers))
    for server in servers:
        store = server.service.models[SENSOR].store
        original = store.persist
        used: list[bool] = []

        async def gated(slots: list[int], original: Any = original, used: list = used) -> Any:
            if not used:
                used.append(True)
                await asyncio.to_thread(barrier.wait, 20)
            return await original(slots)

        store.persist = gated
    return barrier


def test_the_same_observation_sent_to_two_replicas_at_once_is_applied_once(
    models_dir: Path, serve: Callable[..., LiveServer], redis_server: RedisServer
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 3)
    a, b = replica(serve, redis_server), replica(serve, redis_server)
    with (
        httpx.Client(timeout=30) as c,
        httpx.Client(base_url=a.url, timeout=30) as ca,
        httpx.Client(base_url=b.url, timeout=30) as cb,
    ):
        for i in range(2):
            assert post(ca, "race", [obs_body(seconds[i], values[i], seq=i)]).status_code == 200
        assert cb.get(f"/v1/models/{SENSOR}/streams/race").status_code == 200  # B caches it
        _gate_first_persist([a, b])
        obs = [obs_body(seconds[2], values[2], seq=2)]
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(post, client, "race", obs) for client in (ca, cb)]
            answers = [f.result() for f in futures]
        bodies = [r.json() for r in answers]
        assert all(r.status_code == 200 for r in answers), bodies
        assert sorted(x["duplicate"] for x in bodies) == [False, True]  # one applied, one retry
        np.testing.assert_array_equal(forecast(answers[0]), forecast(answers[1]))
        for s in (a, b):
            st = c.get(f"{s.url}/v1/models/{SENSOR}/streams/race").json()
            assert st["count"] == 3 and st["seq"] == 2


def test_the_same_multi_stream_batch_sent_to_two_replicas_at_once_is_applied_once(
    models_dir: Path, serve: Callable[..., LiveServer], redis_server: RedisServer
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)
    a, b = replica(serve, redis_server), replica(serve, redis_server)

    def body(i: int) -> dict:
        return {"streams": [
            {"stream_id": f"r{k}", "observations": [obs_body(seconds[i], values[i], seq=i)]}
            for k in range(20)
        ]}  # fmt: skip

    with httpx.Client(timeout=30) as c:
        for s in (a, b):  # both cache every stream: the next step takes the lane on both
            assert c.post(s.url + MANY, json=body(0)).status_code == 200
        _gate_first_persist([a, b])
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(c.post, s.url + MANY, json=body(1)) for s in (a, b)]
            results = [f.result().json()["results"] for f in futures]
        for ra, rb in zip(*results, strict=True):
            assert "error" not in ra and "error" not in rb, (ra, rb)
            np.testing.assert_array_equal(ra["forecast"]["values"], rb["forecast"]["values"])
        for k in range(20):
            st = c.get(f"{b.url}/v1/models/{SENSOR}/streams/r{k}").json()
            assert st["count"] == 2 and st["seq"] == 1


def test_redis_down_is_503_with_retry_after_then_the_service_recovers(
    models_dir: Path, serve: Callable[..., LiveServer], redis_server: RedisServer
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 4)
    a = replica(serve, redis_server, redis_timeout_seconds=0.5)
    reference = serve()
    with httpx.Client(base_url=a.url, timeout=30) as c, httpx.Client(base_url=reference.url) as ref:
        for i in range(2):
            obs = [obs_body(seconds[i], values[i], seq=i)]
            assert post(ref, "d", obs).status_code == 200 and post(c, "d", obs).status_code == 200
        assert c.get("/readyz").status_code == 200
        redis_server.pause()  # a hung Redis: the socket timeout bounds the wait
        r = post(c, "d", [obs_body(seconds[2], values[2], seq=2)])
        assert r.status_code == 503 and r.headers["Retry-After"] == "1", r.text
        assert r.json()["error"]["code"] == "state_backend_unavailable"
        assert c.get("/readyz").status_code == 503
        redis_server.resume()
        redis_server.stop()  # and a Redis that is gone: connection refused
        r = c.post(
            MANY,
            json={
                "streams": [
                    {"stream_id": "d", "observations": [obs_body(seconds[2], values[2], seq=2)]}
                ]
            },
        )
        assert r.status_code == 200
        assert r.json()["results"][0]["error"]["code"] == "state_backend_unavailable"
        r = c.get(f"/v1/models/{SENSOR}/streams/d")
        assert r.status_code == 503 and "Retry-After" in r.headers
        assert c.get("/readyz").status_code == 503
        redis_server.start()  # same port, same AOF directory
        deadline = 200
        while c.get("/readyz").status_code != 200:
            deadline -= 1
            assert deadline, "readiness did not come back"
            threading.Event().wait(0.05)
        for i in (2, 3):  # the failed observation retried, then the next: as one process
            obs = [obs_body(seconds[i], values[i], seq=i)]
            np.testing.assert_allclose(
                forecast(post(c, "d", obs)), forecast(post(ref, "d", obs)), rtol=1e-5, atol=1e-5
            )
        assert c.get(f"/v1/models/{SENSOR}/streams/d").json()["count"] == 4
