"""The loads of bench/columnar_bench.py against a running service: bulk producers in the
columnar form (JSON or binary, over HTTP or one WebSocket), the row form beside them,
and single-observation requests while a bulk producer saturates the service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np
from websockets.asyncio.client import connect as ws_connect

from bench import client
from bench.payloads import Model
from bench.servers import HOST
from service.client import columns_binary_body, columns_body

STREAMS = 1000
# Builds the raw HTTP request of the i-th request of connection c.
RawFn = Callable[[int, int], bytes]


def _values(model: Model, n: int, k: int) -> np.ndarray:
    wobble = 1.0 + 0.05 * np.sin(k / 7.0)
    return np.tile(np.asarray(model.means, dtype=np.float64) * wobble, (n, 1))


def columns_request(model: Model, ids: list[str], k: int, detail: str) -> bytes:
    """The k-th observation of every stream, one shared tick, as a columnar JSON body."""
    seqs = np.full(len(ids), k, dtype=np.int64)
    return columns_body(ids, model.ts(k), _values(model, len(ids), k), seqs, detail)


def http(path: str, body: bytes, port: int, extra: dict[str, str] | None = None) -> bytes:
    kind = "application/octet-stream" if extra else "application/json"
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: {HOST}:{port}",
        f"content-type: {kind}",
        f"content-length: {len(body)}",
        *(f"{k}: {v}" for k, v in (extra or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def bulk(model: Model, port: int, tag: str, form: str, detail: str) -> RawFn:
    """Request i of connection c: the i-th tick of that connection's 1000 streams."""
    ids = {}

    def raw(c: int, i: int) -> bytes:
        sids = ids.setdefault(c, [f"{tag}-{c}-{j}" for j in range(STREAMS)])
        if form == "json":
            return http(f"/v1/models/{model.name}/columns", columns_request(model, sids, i, detail),
                        port)  # fmt: skip
        if form == "binary":
            values = _values(model, STREAMS, i).astype(np.float32)
            seqs = np.full(STREAMS, i, dtype=np.int64)
            body, head = columns_binary_body(sids, float(model.ts(i)), values, seqs, detail)
            extra = {"inference-header-content-length": str(head)}
            return http(f"/v1/models/{model.name}/columns", body, port, extra)
        return http(f"/v1/models/{model.name}/observations", model.multi(sids, i, detail), port)

    return raw


async def closed_loop(
    port: int, raw: RawFn, conns: int, secs: float, warmup: float = 1.0, units: int = 1
) -> dict[str, float]:
    """`conns` keep-alive connections, each sending its next request when the previous
    answer arrived; every answer must be 200 without a row error."""
    connections = [await client.connect(HOST, port) for _ in range(conns)]
    t_measure = time.perf_counter() + warmup
    t_end = t_measure + secs
    latencies: list[float] = []

    async def worker(c: int) -> None:
        i = measured = 0
        # Until the window closes, and at least one measured request per connection: on a
        # loaded machine one request can outlast the whole window.
        while (t0 := time.perf_counter()) < t_end or not measured:
            status, answer = await connections[c].request(raw(c, i))
            if status != 200 or b'"code"' in answer:
                raise RuntimeError(f"{status} {answer[:300]!r}")
            if t0 >= t_measure:
                latencies.append(time.perf_counter() - t0)
                measured += 1
            i += 1

    try:
        await asyncio.gather(*(worker(c) for c in range(conns)))
    finally:
        for conn in connections:
            if conn.transport is not None:
                conn.transport.close()
    window = time.perf_counter() - t_measure  # the requests started in it all answered
    lat = np.asarray(latencies) * 1e3
    return {
        "per_s": round(len(latencies) * units / window, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 3) if len(lat) else float("nan"),
        "p99_ms": round(float(np.percentile(lat, 99)), 3) if len(lat) else float("nan"),
    }


async def ws_columnar(model: Model, port: int, tag: str, detail: str, secs: float,
                      window: int = 2, warmup: float = 1.0) -> float:  # fmt: skip
    """Observations/s on ONE WebSocket: columnar messages of 1000 streams, `window`
    messages in flight (each message's streams are their own, so they step at once)."""
    ids = [[f"{tag}-{w}-{j}" for j in range(STREAMS)] for w in range(window)]
    url = f"ws://{HOST}:{port}/v1/models/{model.name}/stream"
    t_measure = time.perf_counter() + warmup
    t_end = t_measure + secs
    counted = 0
    async with ws_connect(url, max_size=None, compression=None) as ws:
        for w in range(window):
            await ws.send(_with_id(columns_request(model, ids[w], 0, detail), w))
        k = [1] * window
        while True:
            # Not parsed whole: 144,000 numbers of a full answer would make this client,
            # not the server, the bottleneck. "id" is the answer's last field.
            answer = await ws.recv()
            text = answer if isinstance(answer, str) else answer.decode()
            if '"errors":[]' not in text:
                raise RuntimeError(text[:300])
            now = time.perf_counter()
            if t_measure <= now < t_end:
                counted += STREAMS
            if now >= t_end:
                break
            w = int(text[text.rindex('"id":') + 5 : -1])
            await ws.send(_with_id(columns_request(model, ids[w], k[w], detail), w))
            k[w] += 1
    return round(counted / secs, 1)


def _with_id(body: bytes, ident: int) -> str:
    return f'{{"id":{ident},' + body[1:].decode()


async def fairness(model: Model, port: int, tag: str, secs: float) -> dict[str, float]:
    """p50/p99 of one-observation requests (one connection) alone, then while a bulk
    producer (columnar JSON, 1000 streams, `none`, 2 connections) saturates the service."""
    path = model.stream_path(f"{tag}-single")
    step = [0]

    def one(c: int, i: int) -> bytes:
        step[0] += 1
        return http(path, model.one(step[0]), port)

    alone = await closed_loop(port, one, 1, secs)
    producer = asyncio.ensure_future(
        closed_loop(
            port, bulk(model, port, f"{tag}-bulk", "json", "none"), 2, secs + 1.0, units=STREAMS
        )
    )
    await asyncio.sleep(1.0)  # the producer is up (its warm-up creates its streams)
    loaded = await closed_loop(port, one, 1, secs, warmup=0.0)
    bulk_rate = await producer
    return {
        "single_alone_p50_ms": alone["p50_ms"],
        "single_alone_p99_ms": alone["p99_ms"],
        "single_under_bulk_p50_ms": loaded["p50_ms"],
        "single_under_bulk_p99_ms": loaded["p99_ms"],
        "bulk_updates_per_s": bulk_rate["per_s"],
    }
