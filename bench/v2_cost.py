"""`python -m bench.v2_cost [MODELS_DIR] [--profile N]`: what one v2 infer costs the
service in-process, beside one /v1 observation: CPU microseconds and Python function
calls per request through the ASGI app (no network, no client), for /v1 JSON, v2 REST
with binary tensors (the bytes tritonclient sends; one stream, and 5,000 streams in
turn), v2 REST with JSON tensors, and v2
gRPC's handler (message decode, infer, encode; the grpc.aio transport excluded). The
call counts do not move with the machine's load, so they compare two versions where
timings cannot. ``--profile N`` also prints each scenario's N costliest functions.
Prints one JSON line (then the profiles)."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from bench.request_cost import PERIOD, T0
from bench.v2_bench import v2_body

# A scenario: build(i) makes request i (not measured: the client's work), send(request)
# answers it through the service (measured).
Build = Callable[[int], Any]
Send = Callable[[Any], Awaitable[None]]
Scenario = tuple[Build, Send]
ROUNDS = 2000
BLOCKS = 20
# Streams of the fleet scenario: more than the 4,096 bytes-keyed header plans a model
# keeps (protocol/v2_rest.py), so the plans cannot hold them all.
FLEET = 5000
FLEET_SCENARIO = f"v2 HTTP binary, {FLEET:,} streams"


async def _call(app: Any, path: str, body: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """One POST through the ASGI app; anything but a clean 200 stops the run."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": path, "query_string": b"",
        "headers": [(b"host", b"127.0.0.1"), *headers, (b"content-length", b"%d" % len(body))],
        "http_version": "1.1", "scheme": "http", "root_path": "",
        "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
    }  # fmt: skip
    await app(scope, receive, send)
    answer: bytes = sent[1].get("body", b"")
    if sent[0]["status"] != 200:
        raise RuntimeError(f"{path}: {sent[0]['status']} {answer[:300]!r}")
    return answer


def http_scenarios(app: Any, model: str, n: int) -> dict[str, Scenario]:
    values = [1.0] * n
    json_head = [(b"content-type", b"application/json")]
    v1_path = f"/v1/models/{model}/streams/v1/observations"
    v2_path = f"/v2/models/{model}/infer"

    def v1(i: int) -> bytes:
        return orjson.dumps({"observations": [{"ts": T0 + PERIOD * i, "values": values}]})

    def v2_binary(i: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        body, length = v2_body(n, "v2b", values, int(T0 + PERIOD * i))
        return body, [(b"inference-header-content-length", b"%d" % length)]

    def v2_fleet(i: int) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        # Request i is period i // FLEET of stream i % FLEET: one header per stream.
        sid, period = f"v2f-{i % FLEET}", i // FLEET
        body, length = v2_body(n, sid, values, int(T0 + PERIOD * period))
        return body, [(b"inference-header-content-length", b"%d" % length)]

    def v2_json(i: int) -> bytes:
        return orjson.dumps({
            "inputs": [
                {"name": "INPUT", "shape": [1, 1, n], "datatype": "FP32", "data": values},
                {"name": "TS", "shape": [1, 1], "datatype": "INT64",
                 "data": [int(T0 + PERIOD * i)]},
            ],
            "parameters": {"sequence_id": "v2j"},
        })  # fmt: skip

    async def send_v1(body: bytes) -> None:
        await _call(app, v1_path, body, json_head)

    async def send_binary(request: tuple[bytes, list[tuple[bytes, bytes]]]) -> None:
        await _call(app, v2_path, *request)

    async def send_json(body: bytes) -> None:
        await _call(app, v2_path, body, json_head)

    return {
        "v1 JSON": (v1, send_v1),
        "v2 HTTP binary": (v2_binary, send_binary),
        FLEET_SCENARIO: (v2_fleet, send_binary),
        "v2 HTTP JSON": (v2_json, send_json),
    }


def grpc_scenario(app: Any, model: str, n: int) -> Scenario:
    """The gRPC handler from the request's wire bytes to the answer's (what grpc.aio's
    (de)serializers and our handler do; the HTTP/2 transport itself is not included)."""
    from service.dataplane import DataPlane
    from service.protocol import grpc_v2_pb2 as pb
    from service.transport.v2_grpc import V2Grpc

    registry = app.state.service
    grpc = V2Grpc(DataPlane(registry), registry.metrics, 1 << 20)

    def wire(i: int) -> bytes:
        request = pb.ModelInferRequest(model_name=model)
        request.parameters["sequence_id"].string_param = "v2g"
        request.inputs.add(name="INPUT", datatype="FP32", shape=[1, 1, n])
        request.inputs.add(name="TS", datatype="INT64", shape=[1, 1])
        request.raw_input_contents.append(struct.pack(f"<{n}f", *([1.0] * n)))
        request.raw_input_contents.append(struct.pack("<q", int(T0 + PERIOD * i)))
        return request.SerializeToString()

    async def send(data: bytes) -> None:
        reply = await grpc._infer(pb.ModelInferRequest.FromString(data), None)  # no auth
        if not reply.SerializeToString():
            raise RuntimeError("gRPC: empty reply")

    return wire, send


async def measure(models_dir: Path, model: str, n: int, top: int) -> tuple[dict[str, Any], str]:
    from service.app import create_app
    from service.settings import Settings

    app: Any = create_app(Settings(models_dir=models_dir, snapshot_path=None, auth_disabled=True))
    reports = io.StringIO()
    async with app.router.lifespan_context(app):
        runs = http_scenarios(app, model, n)
        runs["v2 gRPC handler"] = grpc_scenario(app, model, n)
        # Each request is its stream's next period, as a producer's would be, and each
        # scenario has ticks of its own (no scenario finds another's forecast timestamps
        # cached). Requests are built before they are timed (that is the client's work).
        steps = {name: k * 100_000 for k, name in enumerate(runs)}

        def batch(name: str, size: int) -> list[Any]:
            build, start = runs[name][0], steps[name]
            steps[name] += size
            return [build(start + k) for k in range(size)]

        for name, (_, send) in runs.items():  # warm: the streams exist, caches are filled
            for request in batch(name, FLEET if name == FLEET_SCENARIO else 200):
                await send(request)
        # Interleaved blocks, so a change of the machine's load falls on every scenario.
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(BLOCKS):
            for name, (_, send) in runs.items():
                requests = batch(name, ROUNDS // BLOCKS)
                c0 = time.process_time()
                for request in requests:
                    await send(request)
                cpu[name].append((time.process_time() - c0) / len(requests) * 1e6)
        out: dict[str, Any] = {}
        for name, (_, send) in runs.items():
            requests = batch(name, ROUNDS)
            profile = cProfile.Profile()
            profile.enable()
            for request in requests:
                await send(request)
            profile.disable()
            stats = pstats.Stats(profile, stream=reports)
            calls = stats.total_calls / ROUNDS  # type: ignore[attr-defined]
            blocks = sorted(cpu[name])
            out[name] = {
                "cpu_us": round(blocks[len(blocks) // 2], 1),  # the median block
                "cpu_us_min": round(blocks[0], 1),  # the least disturbed block
                "calls": round(calls, 1),
            }
            if top:
                print(f"\n== {name}", file=reports)
                stats.sort_stats("tottime").print_stats(top)
    return out, reports.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.v2_cost")
    parser.add_argument("models", nargs="?", type=Path, default=Path("models"))
    parser.add_argument("--profile", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)
    models_dir = args.models.resolve()
    manifest = json.loads((models_dir / "elec-demand" / "1" / "manifest.json").read_text())
    result, profiles = asyncio.run(
        measure(models_dir, "elec-demand", len(manifest["inputs"]), args.profile)
    )
    print(json.dumps(result))
    if profiles:
        print(profiles)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
