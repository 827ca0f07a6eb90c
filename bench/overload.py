"""Overload and memory-attack rows: does the service degrade gracefully?

``python -m bench.overload`` (service on one core, this client on the other):

- baseline: 2 connections of 200-stream requests, applied observations/s unloaded;
- overload: 200 connections of 200-stream requests for 30 s, a /healthz probe every
  20 ms on its own connection: every answer must be 200 or 503 with Retry-After within
  2 s, applied observations/s at least half the baseline, /healthz p99 under 50 ms;
  then how long until a 200-stream request is as fast as unloaded again (bar: 5 s);
- 2,000 requests whose ``ts`` is 1 MB: RSS growth (bar: < 50 MB);
- 300 connections each posting a ~1 MB history to ONE stream at once: peak RSS growth
  (bar: < 200 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import client
from bench.payloads import find_models
from bench.servers import HOST, REPO, Server, pin_self_to_client_core, start_service


class _Conn(client._Conn):
    """The bench connection, also keeping the last response head (for Retry-After)."""

    head = b""

    def data_received(self, data: bytes) -> None:
        end = (bytes(self.buf) + data).find(b"\r\n\r\n")
        if end >= 0:
            self.head = (bytes(self.buf) + data)[:end].lower()
        super().data_received(data)


async def _connect(port: int) -> _Conn:
    _, proto = await asyncio.get_running_loop().create_connection(_Conn, HOST, port)
    return proto


def _applied(body: bytes, streams: int) -> int:
    return streams - body.count(b'"error"')


async def _multi_load(
    port: int, model: object, conns: int, streams: int, seconds: float, tag: str
) -> dict:
    ids = [[f"{tag}{c}-{j}" for j in range(streams)] for c in range(conns)]
    path = f"/v1/models/{model.name}/observations"  # type: ignore[attr-defined]
    records: list[tuple[float, float, int, bool, int]] = []  # sent, latency, status, RA, applied
    t_end = time.perf_counter() + seconds
    sockets = [await _connect(port) for _ in range(conns)]

    async def worker(c: int, conn: _Conn) -> None:
        k = 0
        while time.perf_counter() < t_end:
            body = model.multi(ids[c], k, "none")  # type: ignore[attr-defined]
            raw = client.build_request("POST", path, body, f"{HOST}:{port}")
            t0 = time.perf_counter()
            try:
                status, answer = await conn.request(raw)
            except (ConnectionError, OSError):
                records.append((t0, time.perf_counter() - t0, 0, False, 0))
                return
            latency = time.perf_counter() - t0
            applied = _applied(answer, streams) if status == 200 else 0
            records.append((t0, latency, status, b"retry-after:" in conn.head, applied))
            if status == 200:
                k += 1

    await asyncio.gather(*(worker(c, s) for c, s in enumerate(sockets)))
    for s in sockets:
        if s.transport is not None:
            s.transport.close()
    arr = np.array([r[1] for r in records]) if records else np.zeros(1)
    statuses: dict[int, int] = {}
    for r in records:
        statuses[r[2]] = statuses.get(r[2], 0) + 1
    return {
        "requests": len(records),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "applied_obs_per_s": round(sum(r[4] for r in records) / seconds, 1),
        "p50_ms": round(float(np.percentile(arr, 50)) * 1e3, 2),
        "p99_ms": round(float(np.percentile(arr, 99)) * 1e3, 2),
        "max_ms": round(float(arr.max()) * 1e3, 2),
        "over_2s": sum(1 for r in records if r[1] > 2.0),
        "503_without_retry_after": sum(1 for r in records if r[2] == 503 and not r[3]),
        "other_statuses": sum(1 for r in records if r[2] not in (200, 503)),
    }


async def _probe(port: int, stop: asyncio.Event, every: float = 0.02) -> list[float]:
    conn = await _connect(port)
    raw = client.build_request("GET", "/healthz", None, f"{HOST}:{port}")
    out: list[float] = []
    while not stop.is_set():
        t0 = time.perf_counter()
        status, _ = await conn.request(raw)
        out.append(time.perf_counter() - t0)
        assert status == 200
        await asyncio.sleep(every)
    return out


async def overload(port: int, model: object, seconds: float) -> dict:
    base = await _multi_load(port, model, 2, 200, 8.0, "base")
    stop = asyncio.Event()
    probe = asyncio.ensure_future(_probe(port, stop))
    loaded = await _multi_load(port, model, 200, 200, seconds, "load")
    stopped = time.perf_counter()
    stop.set()
    health = np.array(await probe)
    # Recovery: one connection, 200-stream requests, until one is as fast as unloaded.
    normal = max(base["p99_ms"], 1.5 * base["p50_ms"]) / 1e3
    conn = await _connect(port)
    ids = [f"after-{j}" for j in range(200)]
    path = f"/v1/models/{model.name}/observations"  # type: ignore[attr-defined]
    recovered_after = None
    for k in range(2000):
        raw = client.build_request("POST", path, model.multi(ids, k, "none"), f"{HOST}:{port}")  # type: ignore[attr-defined]
        t0 = time.perf_counter()
        status, _ = await conn.request(raw)
        if status == 200 and time.perf_counter() - t0 <= normal and k > 0:
            recovered_after = round(time.perf_counter() - stopped, 3)
            break
    return {
        "baseline_2_conns": base,
        "overload_200_conns": loaded,
        "applied_ratio": round(loaded["applied_obs_per_s"] / base["applied_obs_per_s"], 3),
        "healthz_p50_ms": round(float(np.percentile(health, 50)) * 1e3, 2),
        "healthz_p99_ms": round(float(np.percentile(health, 99)) * 1e3, 2),
        "healthz_max_ms": round(float(health.max()) * 1e3, 2),
        "healthz_probes": len(health),
        "recovered_after_s": recovered_after,
    }


async def _post_many(port: int, path: str, bodies: list[bytes], conns: int) -> dict[int, int]:
    queue = list(bodies)
    statuses: dict[int, int] = {}

    async def worker() -> None:
        conn = await _connect(port)
        while queue:
            body = queue.pop()
            raw = client.build_request("POST", path, body, f"{HOST}:{port}")
            status, _ = await conn.request(raw)
            statuses[status] = statuses.get(status, 0) + 1
        if conn.transport is not None:
            conn.transport.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return statuses


async def long_ts(server: Server, model: object, n: int = 2000) -> dict:
    ts = "2014-06-01T00:00:00." + "1" * 1_000_000 + "Z"
    values = json.dumps([1.0] * len(model.manifest["inputs"]))  # type: ignore[attr-defined]
    body = f'{{"observations":[{{"ts":"{ts}","values":{values}}}]}}'.encode()
    before = server.rss()
    path = model.stream_path("ts-attack")  # type: ignore[attr-defined]
    statuses = await _post_many(server.port, path, [body] * n, 8)
    after = server.rss()
    return {
        "requests": n,
        "body_bytes": len(body),
        "statuses": statuses,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "rss_growth_mb": round((after - before) / 2**20, 1),
    }


async def one_stream_flood(server: Server, model: object, conns: int = 300) -> dict:
    body = model.history(0, 5000)  # type: ignore[attr-defined]
    path = model.stream_path("flooded")  # type: ignore[attr-defined]
    before = server.rss()
    peak = [before]
    done = asyncio.Event()

    async def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], server.rss())
            await asyncio.sleep(0.02)

    sampler = asyncio.ensure_future(sample())
    sockets = [await _connect(server.port) for _ in range(conns)]
    raw = client.build_request("POST", path, body, f"{HOST}:{server.port}")
    results = await asyncio.gather(*(s.request(raw) for s in sockets), return_exceptions=True)
    done.set()
    await sampler
    statuses: dict[str, int] = {}
    for r in results:
        key = str(r[0]) if isinstance(r, tuple) else type(r).__name__
        statuses[key] = statuses.get(key, 0) + 1
    for s in sockets:
        if s.transport is not None:
            s.transport.close()
    return {
        "connections": conns,
        "body_bytes": len(body),
        "statuses": statuses,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_peak_mb": round(peak[0] / 2**20, 1),
        "rss_peak_growth_mb": round((peak[0] - before) / 2**20, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--parts", default="overload,long_ts,one_stream_flood", help="comma list of rows to run"
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    model = next(m for m in find_models(args.models_dir) if not m.business_days)
    pin_self_to_client_core()
    results: dict[str, object] = {"model": model.name}
    with tempfile.TemporaryDirectory() as tmp:
        if "overload" in parts:
            with start_service(args.models_dir, Path(tmp)) as server:
                results["overload"] = asyncio.run(overload(server.port, model, args.seconds))
        if "long_ts" in parts:
            with start_service(args.models_dir, Path(tmp)) as server:
                results["long_ts"] = asyncio.run(long_ts(server, model))
        if "one_stream_flood" in parts:
            with start_service(args.models_dir, Path(tmp)) as server:
                results["one_stream_flood"] = asyncio.run(one_stream_flood(server, model))
    text = json.dumps(results, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
