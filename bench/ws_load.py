"""WebSocket load: single-observation messages for many streams, pipelined on each
connection (a window of messages in flight), answers counted as they come back."""

from __future__ import annotations

import asyncio
import time

from websockets.asyncio.client import connect

from bench.payloads import Model


async def _one_connection(
    url: str,
    model: Model,
    tag: str,
    conn: int,
    streams: int,
    window: int,
    t_measure: float,
    t_end: float,
) -> tuple[int, int]:
    """Returns (answers received inside the measured interval, error answers)."""
    counted = 0
    errors = 0
    gate = asyncio.Semaphore(window)
    ids = [f"ws{tag}-{conn}-{s}" for s in range(streams)]
    async with connect(url, max_size=None, compression=None) as ws:

        async def receive() -> None:
            nonlocal counted, errors
            async for message in ws:
                gate.release()
                if t_measure <= time.perf_counter() < t_end:
                    counted += 1
                if b'"error"' in (message if isinstance(message, bytes) else message.encode()):
                    errors += 1

        reader = asyncio.ensure_future(receive())
        k = 0
        sent = 0
        try:
            while time.perf_counter() < t_end:
                for sid in ids:  # round robin: per stream, k increases one period a pass
                    await gate.acquire()
                    await ws.send(model.ws_message(sid, k, sent))
                    sent += 1
                k += 1
            # Let the answers in flight arrive, then stop reading.
            for _ in range(window):
                await asyncio.wait_for(gate.acquire(), timeout=10)
        finally:
            reader.cancel()
    return counted, errors


async def run_ws(
    host: str,
    port: int,
    model: Model,
    connections: int,
    streams_per_connection: int,
    duration_s: float,
    window: int = 128,
    warmup_s: float = 0.5,
) -> dict[str, float | int]:
    url = f"ws://{host}:{port}/v1/models/{model.name}/stream"
    t_measure = time.perf_counter() + warmup_s
    t_end = t_measure + duration_s
    results = await asyncio.gather(
        *(
            _one_connection(
                url,
                model,
                f"{connections}x{streams_per_connection}",
                c,
                streams_per_connection,
                window,
                t_measure,
                t_end,
            )
            for c in range(connections)
        )
    )
    counted = sum(r[0] for r in results)
    return {
        "connections": connections,
        "streams_per_connection": streams_per_connection,
        "in_flight_per_connection": window,
        "observations": counted,
        "seconds": duration_s,
        "observations_per_s": round(counted / duration_s, 1),
        "errors": sum(r[1] for r in results),
    }
