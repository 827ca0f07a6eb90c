"""The server's own view of a load, from /metrics deltas: ORT calls, rows per call and
the share of wall time spent inside ORT. Tells batching and model cost apart from HTTP."""

from __future__ import annotations

import time
from typing import Any

from bench import client
from bench.servers import HOST, Server

_WANTED = (
    "forecast_batch_rows_sum",
    "forecast_batch_rows_count",
    "forecast_inference_duration_seconds_sum",
)


async def snapshot(server: Server, model: str) -> dict[str, float]:
    status, body = await client.request(HOST, server.port, "GET", "/metrics")
    out = {"t": time.perf_counter()}
    if status != 200:
        return out
    label = f'{{model="{model}"}}'
    for line in body.decode().splitlines():
        name, _, value = line.partition(label + " ")
        if value and name in _WANTED:
            out[name] = float(value)
    return out


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    def d(k: str) -> float:
        return after.get(k, 0.0) - before.get(k, 0.0)

    calls = d("forecast_batch_rows_count")
    wall = after["t"] - before["t"]
    if calls <= 0:
        return {}
    return {
        "ort_calls": int(calls),
        "rows_per_call": round(d("forecast_batch_rows_sum") / calls, 2),
        "us_per_ort_call": round(d("forecast_inference_duration_seconds_sum") / calls * 1e6, 1),
        "ort_share_pct": round(100 * d("forecast_inference_duration_seconds_sum") / wall, 1),
    }
