"""The Open Inference Protocol (KServe v2) against /v1, in one run.

``python -m bench.v2_bench [--models models] [--rounds 3] [--seconds 3]`` starts the
service (one core, gRPC on), then for 1 observation per request at concurrency 1 and
16 runs, in interleaved rounds:

- ``v1 JSON, raw``: POST /v1/.../streams/{id}/observations from a minimal asyncio
  HTTP/1.1 client (bench.client), the client the main bench uses;
- ``v2 HTTP binary, raw``: POST /v2/models/{m}/infer with the bytes tritonclient sends
  (JSON header + binary tensors, Inference-Header-Content-Length, no Content-Type),
  from the same minimal client: the two rows differ only in what the server does;
- ``v1 JSON, aiohttp`` and ``v2 HTTP binary, tritonclient.http.aio`` (aiohttp under
  both), and ``v2 gRPC, tritonclient.grpc.aio``: what a Triton user's client gets.
  Each of these decodes its answer into the forecast array (tritonclient's as_numpy;
  aiohttp's ``json()`` then numpy for /v1); the raw rows read the bytes only.

Each connection (or client task) is its own stream, one period per request. Prints a
table: median of the rounds with min..max, req/s, p50/p99 latency, and the server's CPU
time per request (every thread's, from /proc/<pid>/task/*/schedstat): on a busy
machine req/s and latency move with the other load, the server's CPU per request much
less, and 1e6 / (CPU µs per request) is the ceiling of one dedicated core. The client's
CPU per request (this process, every thread) is beside it: server and client run on
separate cores (bench.servers pins both, the same for every row), so whichever of the
two columns is larger at concurrency 16 says which side limits that row's req/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import tritonclient.grpc.aio as tgrpc
import tritonclient.http.aio as thttp

from bench.client import connect
from bench.payloads import Model, find_models
from bench.servers import HOST, free_port, pin_self_to_client_core, start_service

Step = Callable[[int], Awaitable[None]]  # send observation i of this worker's stream
Close = Callable[[], Awaitable[None]]
Worker = tuple[Step, Close]


async def _raw(port: int, model: Model, sid: str, v2: bool) -> tuple[Step, Close]:
    conn = await connect(HOST, port)
    host = f"{HOST}:{port}"
    means = model.means

    def request(i: int) -> bytes:
        ts = model.ts(i)
        if not v2:
            body = json.dumps({"observations": [{"ts": ts, "values": means}]}).encode()
            path = f"/v1/models/{model.name}/streams/{sid}/observations"
            head = f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
        else:
            body, length = v2_body(len(means), sid, means, ts)
            path = f"/v2/models/{model.name}/infer"
            head = f"POST {path} HTTP/1.1\r\nhost: {host}\r\ninference-header-content-length: {length}\r\n"  # noqa: E501
        return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body

    async def step(i: int) -> None:
        status, _ = await conn.request(request(i))
        if status != 200:
            raise RuntimeError(f"status {status}")

    async def close() -> None:
        if conn.transport is not None:
            conn.transport.close()

    return step, close


def v2_body(n: int, sid: str, values: list[float], ts: int) -> tuple[bytes, int]:
    """What tritonclient.http sends for one observation in binary mode (its default)."""
    header = {
        "inputs": [
            {"name": "INPUT", "shape": [1, 1, n], "datatype": "FP32",
             "parameters": {"binary_data_size": 4 * n}},
            {"name": "TS", "shape": [1, 1], "datatype": "INT64",
             "parameters": {"binary_data_size": 8}},
        ],
        "parameters": {"sequence_id": sid, "sequence_start": False, "sequence_end": False,
                       "binary_data_output": True},
    }  # fmt: skip
    head = json.dumps(header, separators=(",", ":")).encode()
    return head + struct.pack(f"<{n}f", *values) + struct.pack("<q", ts), len(head)


async def _aiohttp_v1(port: int, model: Model, sid: str) -> tuple[Step, Close]:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
    url = f"http://{HOST}:{port}/v1/models/{model.name}/streams/{sid}/observations"

    async def step(i: int) -> None:
        body = {"observations": [{"ts": model.ts(i), "values": model.means}]}
        async with session.post(url, json=body) as r:
            if r.status != 200:
                raise RuntimeError(f"status {r.status}")
            # The forecast as an array, as tritonclient's as_numpy gives it: both client
            # rows decode their answer (aiohttp's default JSON decoder here).
            answer = await r.json()
            np.asarray(answer["forecast"]["values"], dtype=np.float32)

    return step, session.close


async def _triton(port: int, model: Model, sid: str, grpc: bool) -> tuple[Step, Close]:
    lib: Any = tgrpc if grpc else thttp
    client = lib.InferenceServerClient(f"{HOST}:{port}")
    x = np.asarray(model.means, dtype=np.float32).reshape(1, 1, -1)

    async def step(i: int) -> None:
        tensor_x = lib.InferInput("INPUT", list(x.shape), "FP32")
        tensor_x.set_data_from_numpy(x)
        tensor_ts = lib.InferInput("TS", [1, 1], "INT64")
        tensor_ts.set_data_from_numpy(np.array([[model.ts(i)]], dtype=np.int64))
        result = await client.infer(model.name, [tensor_x, tensor_ts], sequence_id=sid)
        result.as_numpy("FORECAST")

    return step, client.close


def cpu_seconds(pid: int) -> float:
    """CPU time of every live thread of a process (ns-resolution schedstat): the server's
    cost, which other load on the machine changes far less than its req/s."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:  # a thread that just exited
            continue
    return total / 1e9


async def drive(
    make: Callable[[int], Awaitable[tuple[Step, Close]]],
    concurrency: int,
    seconds: float,
    server_pid: int,
    warmup: float = 0.5,
) -> dict[str, float]:
    workers = [await make(ci) for ci in range(concurrency)]
    latencies: list[float] = []
    perf = time.perf_counter
    t_measure = perf() + warmup
    t_end = t_measure + seconds
    cpu: list[float] = []  # (server, client) CPU seconds when the window opened

    async def run(step: Step) -> None:
        i = measured = 0
        # Until the window closes, and at least one measured request per worker: on a
        # loaded machine one request can outlast the whole window.
        while (t0 := perf()) < t_end or not measured:
            if t0 >= t_measure and not cpu:
                cpu.extend((cpu_seconds(server_pid), time.process_time()))
            await step(i)
            i += 1
            if t0 >= t_measure:
                latencies.append(perf() - t0)
                measured += 1

    await asyncio.gather(*(run(step) for step, _ in workers))
    window = perf() - t_measure  # the requests that started in it have all been answered
    cpu_used = cpu_seconds(server_pid) - cpu[0]
    client_used = time.process_time() - cpu[1]  # this process: the client and its threads
    for _, close in workers:
        await close()
    lat = np.asarray(latencies)
    return {
        "rps": len(lat) / window,
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p99_ms": float(np.percentile(lat, 99) * 1e3),
        "server_cpu_us": cpu_used / len(lat) * 1e6,
        "client_cpu_us": client_used / len(lat) * 1e6,
    }


SCENARIOS = ("v1 JSON, raw", "v2 HTTP binary, raw", "v1 JSON, aiohttp",
             "v2 HTTP binary, tritonclient", "v2 gRPC, tritonclient")  # fmt: skip


async def measure(
    model: Model, http: int, grpc: int, server_pid: int, rounds: int, seconds: float
) -> list[Any]:
    runs: list[dict[str, Any]] = []
    for r in range(rounds):  # interleaved: every scenario once per round
        for concurrency in (1, 16):
            for name in SCENARIOS:
                tag = f"s{SCENARIOS.index(name)}-r{r}c{concurrency}"  # fresh streams

                def make(
                    ci: int, name: str = name, tag: str = tag
                ) -> Awaitable[tuple[Step, Close]]:
                    sid = f"{tag}-{ci}"
                    if name == "v1 JSON, raw":
                        return _raw(http, model, sid, v2=False)
                    if name == "v2 HTTP binary, raw":
                        return _raw(http, model, sid, v2=True)
                    if name == "v1 JSON, aiohttp":
                        return _aiohttp_v1(http, model, sid)
                    return _triton(grpc if "gRPC" in name else http, model, sid, "gRPC" in name)

                row = await drive(make, concurrency, seconds, server_pid)
                runs.append({"scenario": name, "concurrency": concurrency, "round": r, **row})
                print(f"round {r} c={concurrency} {name}: {row['rps']:.0f} req/s, "
                      f"p50 {row['p50_ms']:.3f} ms, server {row['server_cpu_us']:.0f} µs CPU, "
                      f"client {row['client_cpu_us']:.0f} µs CPU", flush=True)  # fmt: skip
    return runs


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(np.median([x[key] for x in runs]))


def table(runs: list[dict[str, Any]]) -> str:
    def cell(values: list[float], digits: int) -> str:
        v = sorted(values)
        med = float(np.median(v))
        return f"{med:.{digits}f} ({v[0]:.{digits}f}..{v[-1]:.{digits}f})"

    lines = [
        "| scenario | conc. | req/s | p50 ms | p99 ms | server CPU µs/req | client CPU µs/req "
        "| req/s vs v1 (same client kind) | p50 − v1's ms |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    baseline = {"raw": "v1 JSON, raw", "aiohttp": "v1 JSON, aiohttp"}
    for concurrency in (1, 16):
        rows = {n: [x for x in runs if x["scenario"] == n and x["concurrency"] == concurrency]
                for n in SCENARIOS}  # fmt: skip
        for name in SCENARIOS:
            rs = rows[name]
            base = baseline["raw" if "raw" in name else "aiohttp"]
            ratio = _median(rs, "rps") / _median(rows[base], "rps")
            p50_delta = _median(rs, "p50_ms") - _median(rows[base], "p50_ms")
            lines.append(
                f"| {name} | {concurrency} | {cell([x['rps'] for x in rs], 0)} | "
                f"{cell([x['p50_ms'] for x in rs], 3)} | {cell([x['p99_ms'] for x in rs], 3)} | "
                f"{cell([x['server_cpu_us'] for x in rs], 0)} | "
                f"{cell([x['client_cpu_us'] for x in rs], 0)} | {ratio:.2f}x | {p50_delta:+.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--model", default=None, help="default: the first non-daily model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--out", type=Path, default=None, help="also write the runs as JSON")
    args = parser.parse_args()
    models = find_models(args.models)
    model = next(
        (m for m in models if m.name == args.model or (args.model is None and not m.business_days)),
        models[0],
    )
    grpc_port = free_port()
    with (
        tempfile.TemporaryDirectory() as logs,
        start_service(args.models, Path(logs), grpc_port=grpc_port) as server,
    ):
        pin_self_to_client_core()
        runs = asyncio.run(
            measure(model, server.port, grpc_port, server.pid, args.rounds, args.seconds)
        )
    print(f"\nmodel {model.name}; median of {args.rounds} interleaved rounds (min..max), "
          f"{args.seconds:g} s each\n")  # fmt: skip
    print(table(runs))
    if args.out is not None:
        args.out.write_text(json.dumps(runs, indent=1))


if __name__ == "__main__":
    main()
