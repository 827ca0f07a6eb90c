"""`python -m bench.request_cost [MODELS_DIR] [--auth]`: what one request costs the
service's ASGI app in-process (no network, no client): CPU microseconds and Python
function calls per one-observation request and per stream of 1000-stream requests, and
the bytes each new stream of a multi-stream request keeps (tracemalloc). The call count
does not depend on how loaded the machine is, so it compares two checkouts exactly where
timings cannot (bench.compare_trees runs this in each). ``--auth`` serves with
authentication on (a tenant key with a stream-id prefix, as deployed), so the per-stream
cost of tenants and quotas shows against the default run. Prints one JSON line."""

from __future__ import annotations

import asyncio
import cProfile
import hashlib
import json
import pstats
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

T0 = 1401580800.0  # 2014-06-01T00:00:00Z
PERIOD = 1800.0


KEY = "request-cost-key"
HOST = (b"host", b"localhost")  # the Host allowlist answers loopback names only


async def _post(
    app: Any,
    path: str,
    body: bytes,
    auth: bool = False,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> bytes:
    """One request through the ASGI app; anything but a clean 200 stops the run. ``extra``
    headers replace or add to the JSON ones; returns the answer's body."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [HOST, (b"content-length", b"%d" % len(body)), *extra]
    if not any(name == b"content-type" for name, _ in extra):
        headers.append((b"content-type", b"application/json"))
    if auth:
        headers.append((b"authorization", f"Bearer {KEY}".encode()))
    scope = {
        "type": "http", "method": "POST", "path": path, "headers": headers, "query_string": b"",
        "http_version": "1.1", "scheme": "http", "root_path": "",
        "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
    }  # fmt: skip
    await app(scope, receive, send)
    if sent[0]["status"] != 200 or b'"error"' in sent[1].get("body", b""):
        raise RuntimeError(f"{path}: {sent[0]['status']} {sent[1].get('body', b'')[:300]!r}")
    return bytes(sent[1].get("body", b""))


async def _measure(run: Callable[[], Awaitable[None]], units: int) -> tuple[float, float]:
    profile = cProfile.Profile()
    c0 = time.process_time()
    await run()
    cpu_us = (time.process_time() - c0) / units * 1e6
    profile.enable()
    await run()
    profile.disable()
    calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    return cpu_us, calls / units


async def measure(
    models_dir: Path, model: str, n_inputs: int, auth: bool = False, **overrides: Any
) -> dict[str, float]:
    """``overrides`` change the service's settings (e.g. the Redis backend, for
    bench.redis_bench)."""
    from service.app import create_app
    from service.settings import Settings

    keys = Path(tempfile.mkdtemp()) / "keys"
    digest = hashlib.sha256(KEY.encode()).hexdigest()
    keys.write_text(f"{digest} scopes=write prefix=cost- name=cost\n")
    settings = Settings(
        models_dir=models_dir,
        snapshot_path=None,
        auth_disabled=not auth,
        api_keys_file=keys if auth else None,
        key_new_streams_per_second=1e9,  # the quota's bookkeeping, not its refusals
        **overrides,
    )
    app: Any = create_app(settings)
    values = [1.0] * n_inputs
    one_path = f"/v1/models/{model}/streams/cost-one/observations"
    many_path = f"/v1/models/{model}/observations"
    ids = [f"cost-{j}" for j in range(1000)]
    step = [0]

    def one(i: int) -> bytes:
        return orjson.dumps({"observations": [{"ts": T0 + PERIOD * i, "seq": i, "values": values}]})

    def many(i: int, detail: str) -> bytes:
        obs = [{"ts": T0 + PERIOD * i, "values": values}]
        streams = [{"stream_id": s, "observations": obs} for s in ids]
        return orjson.dumps({"streams": streams, "forecast": detail})

    async def ones() -> None:
        for _ in range(2000):
            step[0] += 1
            await _post(app, one_path, one(step[0]), auth)

    def manys(detail: str) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            for _ in range(20):
                step[0] += 1
                await _post(app, many_path, many(step[0], detail), auth)

        return run

    async def fresh(n: int) -> float:
        """Bytes kept per new stream: n requests of 1000 streams never seen before."""
        obs = [{"ts": T0, "values": values}]
        bodies = [
            orjson.dumps(
                {
                    "streams": [
                        {"stream_id": f"cost-new-{r}-{j}", "observations": obs} for j in range(1000)
                    ],
                    "forecast": "none",
                }
            )
            for r in range(n)
        ]
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for body in bodies:
            await _post(app, many_path, body, auth)
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return (after - before) / (n * 1000)

    async with app.router.lifespan_context(app):
        out: dict[str, float] = {}
        out["one_obs_cpu_us"], out["one_obs_calls"] = await _measure(ones, 2000)
        # The multi-stream streams start at the current step, so that every measured
        # request is their next period (the vectorised lane), as a producer's would be.
        step[0] += 1
        await _post(app, many_path, many(step[0], "full"), auth)
        for detail in ("full", "none"):
            cpu, calls = await _measure(manys(detail), 20 * 1000)
            out[f"multi_{detail}_cpu_us_per_stream"], out[f"multi_{detail}_calls_per_stream"] = (
                cpu,
                calls,
            )
        out["bytes_per_new_stream"] = await fresh(20)
    return {k: round(v, 3) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    auth = "--auth" in args
    args = [a for a in args if a != "--auth"]
    models_dir = Path(args[0] if args else "models").resolve()
    manifest = json.loads((models_dir / "elec-demand" / "1" / "manifest.json").read_text())
    result = asyncio.run(measure(models_dir, "elec-demand", len(manifest["inputs"]), auth))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
