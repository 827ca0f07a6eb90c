"""The Redis state backend against the memory backend, side by side in one run.

``python -m bench.redis_bench [--rounds 3] [--duration 3]``: a real redis-server (AOF on,
appendfsync everysec, as docker-compose.yml runs it) on a free port, then per round the
service with each backend in turn (the order alternates between rounds), measuring one
observation per request unloaded (1 connection) and at 16 connections, and multi-stream
requests (1000 streams each, 4 connections). Prints each figure as the median of the
rounds with min..max, and the Redis/memory ratio of the medians. The service is pinned
to one core, the client and redis-server share the other.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.payloads import Model, find_models
from bench.report import table
from bench.servers import HOST, cpus, free_port, pin_self_to_client_core, start_service

# (figure, scenario): each returns one number from a running server.
Scenario = Callable[[Any, Model, str, float], Any]


async def _p50_one(server: Any, model: Model, tag: str, duration: float) -> float:
    row = await scenarios.one_obs(server, model, 1, duration, tag)
    return float(row["p50_ms"])


async def _rps_16(server: Any, model: Model, tag: str, duration: float) -> float:
    row = await scenarios.one_obs(server, model, 16, duration, tag)
    return float(row["rps"])


async def _multi(server: Any, model: Model, tag: str, duration: float) -> float:
    row = await scenarios.multi(server, model, 1000, 4, duration)
    return float(row["stream_updates_per_s"])


FIGURES: list[tuple[str, Scenario]] = [
    ("1 obs/request, 1 conn: p50 ms", _p50_one),
    ("1 obs/request, 16 conns: req/s", _rps_16),
    ("multi-stream 1000 x 4 conns: updates/s", _multi),
]


class Redis:
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", HOST, "--dir", str(workdir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus()[1]),
        )  # fmt: skip
        self.url = f"redis://{HOST}:{self.port}/0"
        import redis

        deadline = time.monotonic() + 20
        with redis.Redis(host=HOST, port=self.port) as client:
            while True:
                try:
                    client.ping()
                    return
                except redis.exceptions.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


async def run(models_dir: Path, rounds: int, duration: float, log_dir: Path) -> dict[str, Any]:
    model = next(m for m in find_models(models_dir) if not m.business_days)
    redis = Redis(log_dir)
    results: dict[str, dict[str, list[float]]] = {"memory": {}, "redis": {}}
    try:
        for r in range(rounds):
            order = ["memory", "redis"] if r % 2 == 0 else ["redis", "memory"]
            for backend in order:
                settings: dict[str, str | int] = {"state_backend": backend}
                if backend == "redis":
                    settings["redis_url"] = redis.url
                with start_service(models_dir, log_dir, **settings) as server:
                    for name, scenario in FIGURES:
                        tag = f"{backend}-r{r}"
                        value = await scenario(server, model, tag, duration)
                        results[backend].setdefault(name, []).append(value)
                        print(f"round {r} {backend:6} {name}: {value:,.3f}", flush=True)
    finally:
        redis.stop()
    return results


def summarize(results: dict[str, dict[str, list[float]]]) -> list[dict[str, Any]]:
    rows = []
    for name, _ in FIGURES:
        row: dict[str, Any] = {"figure": name}
        medians = {}
        for backend in ("memory", "redis"):
            values = results[backend][name]
            medians[backend] = statistics.median(values)
            row[backend] = f"{medians[backend]:,.3f} ({min(values):,.3f}..{max(values):,.3f})"
        row["redis / memory"] = round(medians["redis"] / medians["memory"], 2)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args(argv)
    pin_self_to_client_core()
    with tempfile.TemporaryDirectory(prefix="redis-bench-") as tmp:
        results = asyncio.run(run(args.models, args.rounds, args.duration, Path(tmp)))
    columns = ["figure", "memory", "redis", "redis / memory"]
    title = f"Redis vs memory backend: median of {args.rounds} interleaved rounds (min..max)"
    print(table(title, summarize(results), columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
