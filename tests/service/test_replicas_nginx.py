"""Two replicas (python -m service subprocesses) on one real Redis behind a real nginx
running deploy/nginx/forecast.conf: stream affinity by consistent hash, and kill -9 of a
replica or of redis-server mid-traffic loses and duplicates nothing acknowledged."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from proc_helpers import ServiceProcess
from redis_helpers import RedisServer, require
from svc_helpers import SENSOR, LiveServer, held_out, obs_body
from websockets.sync.client import connect

from bench.nginx import Nginx

MANY = f"/v1/models/{SENSOR}/observations"


@dataclass
class Cluster:
    redis: RedisServer
    replicas: list[ServiceProcess]
    nginx: Nginx


@pytest.fixture
def cluster(models_dir: Path, tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    env = {
        "FORECAST_STATE_BACKEND": "redis",
        "FORECAST_REDIS_URL": redis_server.url,
        "FORECAST_SNAPSHOT_PATH": "",
        "FORECAST_MAX_GAP_STEPS": "4",
    }
    replicas = [ServiceProcess(models_dir, tmp_path / f"replica{k}.log", **env) for k in (1, 2)]
    for r in replicas:
        r.start(wait=False)
    nginx = None
    try:
        for r in replicas:
            r.wait_ready()
        binary = require("nginx", "/usr/sbin/nginx")
        nginx = Nginx(binary, tmp_path / "nginx", [r.port for r in replicas]).start()
        yield Cluster(redis_server, replicas, nginx)
    finally:
        if nginx is not None:
            nginx.stop()
        for r in replicas:
            r.stop()


def stream_path(sid: str) -> str:
    return f"/v1/models/{SENSOR}/streams/{sid}/observations"


def test_nginx_keeps_each_stream_on_one_replica_and_spreads_streams(
    models_dir: Path, cluster: Cluster
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 3)
    seen: dict[str, set[str]] = {}
    with httpx.Client(base_url=cluster.nginx.url, timeout=30) as c:
        for i in range(3):
            for k in range(24):
                sid = f"aff{k}"
                r = c.post(
                    stream_path(sid),
                    json={"observations": [obs_body(seconds[i], values[i], seq=i)]},
                )
                assert r.status_code == 200, r.text
                seen.setdefault(sid, set()).add(r.headers["X-Upstream"])
                r = c.get(f"/v1/models/{SENSOR}/streams/{sid}")  # GET hashes the same way
                seen[sid].add(r.headers["X-Upstream"])
        assert all(len(ups) == 1 for ups in seen.values()), seen
        assert len(set().union(*seen.values())) == 2  # both replicas hold streams
        # The multi-stream form routes by X-Stream-Key when the client names one.
        body = {
            "streams": [
                {"stream_id": "aff0", "observations": [obs_body(seconds[2], values[2], seq=2)]}
            ]
        }
        ups = {c.post(MANY, json=body, headers={"X-Stream-Key": "producer-7"}).headers["X-Upstream"]
               for _ in range(6)}  # fmt: skip
        assert len(ups) == 1
    # WebSocket upgrades pass through nginx (routed by X-Stream-Key too).
    ws_url = cluster.nginx.url.replace("http://", "ws://") + f"/v1/models/{SENSOR}/stream"
    with connect(ws_url, additional_headers={"X-Stream-Key": "producer-7"}) as ws:
        ws.send(json.dumps({"stream_id": "ws-a", "id": 1,
                            "observations": [obs_body(seconds[0], values[0], seq=0)]}))  # fmt: skip
        answer = json.loads(ws.recv(timeout=30))
        assert answer["id"] == 1 and answer["seq"] == 0 and "forecast" in answer, answer


@dataclass
class Traffic:
    """A producer that retries on connection errors and 502/503/504 until it gets 200,
    as a client of an exactly-once API may: every observation carries its seq."""

    url: str
    seconds: np.ndarray
    values: np.ndarray
    acked: int = 0
    retries: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def send(self, client: httpx.Client, sid: str, k: int, i: int) -> dict[str, Any]:
        obs = [obs_body(self.seconds[i], self.values[i] + 0.01 * k, seq=i)]
        deadline = time.monotonic() + 90
        while True:
            try:
                r = client.post(stream_path(sid), json={"observations": obs})
                if r.status_code == 200:
                    with self._lock:
                        self.acked += 1
                    return r.json()
                assert r.status_code in (502, 503, 504), r.text
            except httpx.TransportError:
                pass
            with self._lock:
                self.retries += 1
            assert time.monotonic() < deadline, f"{sid} seq {i} never acknowledged"
            time.sleep(0.02)

    def run(self, sids: list[str], steps: range, workers: int = 8) -> dict[str, dict]:
        last: dict[str, dict] = {}

        def drive(part: list[tuple[int, str]]) -> None:
            with httpx.Client(base_url=self.url, timeout=30) as client:
                for i in steps:
                    for k, sid in part:
                        last[sid] = self.send(client, sid, k, i)

        numbered = list(enumerate(sids))
        with ThreadPoolExecutor(workers) as pool:
            for f in [pool.submit(drive, numbered[w::workers]) for w in range(workers)]:
                f.result()
        return last


def reference(serve: Callable[..., LiveServer], sids: list[str], seconds: np.ndarray,
              values: np.ndarray, steps: int) -> dict[str, np.ndarray]:  # fmt: skip
    """The same observations on one process with the memory backend."""
    ref = serve(snapshot_path="")
    out: dict[str, np.ndarray] = {}
    with httpx.Client(base_url=ref.url, timeout=60) as c:
        for i in range(steps):
            streams = [
                {"stream_id": sid, "observations": [obs_body(seconds[i], values[i] + 0.01 * k, i)]}
                for k, sid in enumerate(sids)
            ]
            body = {"streams": streams}
            for res in c.post(MANY, json=body).json()["results"]:
                out[res["stream_id"]] = np.array(res["forecast"]["values"])
    return out


def check(url: str, sids: list[str], steps: int, last: dict[str, dict],
          want: dict[str, np.ndarray]) -> None:  # fmt: skip
    with httpx.Client(base_url=url, timeout=30) as c:
        for sid in sids:
            st = c.get(f"/v1/models/{SENSOR}/streams/{sid}").json()
            # Applied exactly the acknowledged observations: none lost, none twice.
            assert (st["count"], st["seq"]) == (steps, steps - 1), (sid, st)
            np.testing.assert_allclose(st["forecast"]["values"], want[sid], rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(
                last[sid]["forecast"]["values"], want[sid], rtol=1e-5, atol=1e-5
            )


def test_kill_9_of_a_replica_mid_traffic_loses_and_duplicates_nothing(
    models_dir: Path, cluster: Cluster, serve: Callable[..., LiveServer]
) -> None:
    steps = 4
    seconds, values = held_out(models_dir, SENSOR, steps)
    sids = [f"c{k}" for k in range(200)]
    traffic = Traffic(cluster.nginx.url, seconds, values)
    victim = cluster.replicas[0]
    traffic.run(sids, range(1))  # every stream exists, spread over both replicas

    def kill_when_busy() -> None:
        while traffic.acked < 200 + 150:  # mid-way through the second step
            time.sleep(0.005)
        victim.kill9()

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    traffic.run(sids, range(1, 3))
    killer.join()
    victim.start()  # same port: its streams hash back to it, with a cold cache
    last = traffic.run(sids, range(3, steps))
    assert traffic.acked == len(sids) * steps
    check(cluster.nginx.url, sids, steps, last, reference(serve, sids, seconds, values, steps))


def test_kill_9_of_redis_under_appendfsync_always_loses_nothing_acknowledged(
    models_dir: Path, tmp_path: Path, serve: Callable[..., LiveServer]
) -> None:
    redis = RedisServer(tmp_path / "redis-always", appendfsync="always").start()
    try:
        a = serve(state_backend="redis", redis_url=redis.url, snapshot_path="")
        steps = 4
        seconds, values = held_out(models_dir, SENSOR, steps)
        sids = [f"r{k}" for k in range(60)]
        traffic = Traffic(a.url, seconds, values)
        traffic.run(sids, range(1))

        def kill_and_restart() -> None:
            while traffic.acked < 60 + 40:
                time.sleep(0.005)
            redis.kill9()
            redis.start()  # same port, same directory: the AOF is replayed

        chaos = threading.Thread(target=kill_and_restart)
        chaos.start()
        traffic.run(sids, range(1, steps))
        chaos.join()
        assert traffic.acked == len(sids) * steps
        with httpx.Client(base_url=a.url) as c:
            last = {sid: c.get(f"/v1/models/{SENSOR}/streams/{sid}").json() for sid in sids}
        check(a.url, sids, steps, last, reference(serve, sids, seconds, values, steps))
    finally:
        if redis.proc is not None:
            redis.stop()
