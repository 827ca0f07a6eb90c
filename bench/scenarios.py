"""The measurements against running servers. Each takes a started server and returns a
JSON-able dict; none asserts anything about speed."""

from __future__ import annotations

import time

import numpy as np

from bench import client
from bench.payloads import Model
from bench.servers import HOST, Server


def _ok_multi(body: bytes) -> bool:
    return b'"error"' not in body


async def one_obs(
    server: Server, model: Model, concurrency: int, duration_s: float, tag: str, prime: int = 0
) -> dict:
    """One observation per request, one stream per connection, seq/ts one period apart.
    Each stream first gets `prime` observations in one request, so a window-based server
    re-runs a full window from the first measured request on."""
    paths = [model.stream_path(f"{tag}-c{concurrency}-{ci}") for ci in range(concurrency)]
    if prime:
        for p in paths:
            status, answer = await client.request(
                HOST, server.port, "POST", p, model.history(0, prime)
            )
            if status != 200:
                raise RuntimeError(f"priming {p}: {status} {answer[:300]!r}")
    result = await client.run_load(
        HOST,
        server.port,
        lambda ci, i: paths[ci],
        lambda ci, i: model.one(prime + i),
        concurrency,
        duration_s,
    )
    return {"concurrency": concurrency, **result.summary()}


async def multi(
    server: Server,
    model: Model,
    streams: int,
    concurrency: int,
    duration_s: float,
    detail: str = "full",
    tag: str = "",
) -> dict:
    """Multi-stream requests: `streams` streams per request, one observation each, the
    answers carrying `detail` of the forecast (full, median, none). A new `tag` gives new
    streams (each run starts its streams at seq 0)."""
    ids = [
        [f"m{tag}{streams}{detail}-{ci}-{j}" for j in range(streams)] for ci in range(concurrency)
    ]
    path = f"/v1/models/{model.name}/observations"
    result = await client.run_load(
        HOST,
        server.port,
        path,
        lambda ci, i: model.multi(ids[ci], i, detail),
        concurrency,
        duration_s,
        warmup_s=1.0,  # the first request of each connection creates its streams
        check=_ok_multi,
    )
    s = result.summary()
    return {
        "streams_per_request": streams,
        "forecast": detail,
        "concurrency": concurrency,
        **s,
        "stream_updates_per_s": round(result.rps * streams, 1),
    }


async def stateless(
    server: Server, model: Model, window: int, concurrency: int, duration_s: float
) -> dict:
    """POST /forecast with a history of `window` observations (touches no stream)."""
    body = model.history(0, window)
    path = f"/v1/models/{model.name}/forecast"
    result = await client.run_load(
        HOST, server.port, path, lambda ci, i: body, concurrency, duration_s
    )
    return {"window": window, "concurrency": concurrency, **result.summary()}


async def scaling(
    server: Server, model: Model, depths: list[int], rounds: int, max_history: int, parts: int = 3
) -> dict:
    """Cost of one observation after `depth` earlier ones. Streams are primed with history
    requests, then measured interleaved (one request to each in turn, one connection) so
    that machine noise hits every depth alike. The ratio (deepest ÷ shallowest p50) is
    also taken on `parts` consecutive slices of the measured rounds: its median, min and
    max say how much it moved while the run lasted."""
    streams = {d: f"depth-{d}" for d in depths}
    for d, sid in streams.items():
        done = 0
        while done < d:
            n = min(max_history, d - done)
            status, answer = await client.request(
                HOST, server.port, "POST", model.stream_path(sid), model.history(done, n)
            )
            if status != 200:
                raise RuntimeError(f"priming {sid} failed: {status} {answer[:300]!r}")
            done += n
    conn = await client.connect(HOST, server.port)
    hostport = f"{HOST}:{server.port}"
    lat: dict[int, list[float]] = {d: [] for d in depths}
    try:
        for r in range(rounds):
            for d, sid in streams.items():
                raw = client.build_request(
                    "POST", model.stream_path(sid), model.one(d + r), hostport
                )
                t0 = time.perf_counter()
                status, answer = await conn.request(raw)
                dt = time.perf_counter() - t0
                if status != 200:
                    raise RuntimeError(f"{sid}: {status} {answer[:300]!r}")
                if r >= rounds // 10:  # first 10% is warm-up
                    lat[d].append(dt)
    finally:
        assert conn.transport is not None
        conn.transport.close()
    first, last = depths[0], depths[-1]
    part_ratios = [
        float(np.percentile(b, 50) / np.percentile(a, 50))
        for a, b in zip(
            np.array_split(np.asarray(lat[first]), parts),
            np.array_split(np.asarray(lat[last]), parts),
            strict=True,
        )
    ]
    rows = [
        {
            "earlier_observations": d,
            "requests": len(v),
            "p50_ms": round(float(np.percentile(v, 50)) * 1e3, 3),
            "mean_ms": round(float(np.mean(v)) * 1e3, 3),
            "p99_ms": round(float(np.percentile(v, 99)) * 1e3, 3),
        }
        for d, v in lat.items()
    ]
    return {
        "rows": rows,
        "ratio_p50_last_vs_first": round(rows[-1]["p50_ms"] / rows[0]["p50_ms"], 3),
        "ratio_p50_parts": [round(x, 3) for x in part_ratios],
    }


async def memory(server: Server, model: Model, targets: list[int], per_request: int = 1000) -> dict:
    """RSS of the service process per live stream: create streams through multi-stream
    requests (first observation each) and read /proc/<pid>/status at each target."""
    path = f"/v1/models/{model.name}/observations"
    conn = await client.connect(HOST, server.port)
    hostport = f"{HOST}:{server.port}"
    created = 0

    async def grow(to: int) -> None:
        nonlocal created
        while created < to:
            n = min(per_request, to - created)
            ids = [f"mem-{created + j}" for j in range(n)]
            raw = client.build_request("POST", path, model.multi(ids, 0), hostport)
            status, answer = await conn.request(raw)
            if status != 200 or b'"error"' in answer:
                raise RuntimeError(f"creating streams failed: {status} {answer[:300]!r}")
            created += n

    rows = []
    try:
        # A first batch warms every lazily built cache, so the baseline is the steady one.
        await grow(per_request)
        base_n, base_rss = created, server.rss()
        t0 = time.perf_counter()
        for target in targets:
            await grow(target)
            rss = server.rss()
            rows.append(
                {
                    "live_streams": target,
                    "rss_mb": round(rss / 2**20, 1),
                    "bytes_per_stream": round((rss - base_rss) / (target - base_n), 1),
                    "create_streams_per_s": round(
                        (created - base_n) / (time.perf_counter() - t0), 1
                    ),
                }
            )
    finally:
        assert conn.transport is not None
        conn.transport.close()
    return {"baseline_streams": base_n, "baseline_rss_mb": round(base_rss / 2**20, 1), "rows": rows}
