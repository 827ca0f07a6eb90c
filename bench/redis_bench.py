"""The Redis state backend against the memory backend, side by side in one run.

``python -m bench.redis_bench [--rounds 3] [--duration 3]``: a real redis-server (AOF on,
appendfsync everysec, as docker-compose.yml runs it) on a free port, then per round the
service with each backend in turn (the order alternates between rounds), measuring one
observation per request unloaded (1 connection) and at 16 connections, and multi-stream
requests (1000 streams each, 4 connections). Prints each figure as the median of the
rounds with min..max, and the Redis/memory ratio of the medians. The service is pinned
to one core and the client to the other. Redis runs twice: beside the service on its
core (the table's "redis", as a co-located Redis would be scheduled) and on the
client's core ("redis, other core"): on this VM a wake-up across vCPUs costs ~150 us
each way, which the second placement pays twice per observation (docs/benchmarks.md).

Then, also interleaved, one replica (pinned to its core, clients straight to it)
against two replicas behind nginx (deploy/nginx/forecast.conf), all on the Redis
backend. Two cores only: the two replicas, nginx, redis-server and the client all share
them, so the second table says what the client and the sharing leave, not what a
second machine would add (docs/operations.md has that arithmetic).
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

from bench import request_cost, scenarios
from bench.nginx import Nginx
from bench.payloads import Model, find_models
from bench.report import table
from bench.servers import (
    HOST,
    cpus,
    free_port,
    pin_self_to_client_core,
    start_service,
    start_trivial,
)

# The Redis backend with redis-server on the client's core instead of the service's.
FAR = "redis, other core"

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
    def __init__(self, workdir: Path, core: int = 1) -> None:
        """``core``: 0 the service's core, 1 the client's (bench.servers.cpus)."""
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", HOST, "--dir", str(workdir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, cpus()[core]),
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


def _unpin(pid: int) -> None:
    """Let every thread of a replica run on any core (start_service pins them to one)."""
    every = set(os.sched_getaffinity(0)) | cpus()[0] | cpus()[1]
    for tid in os.listdir(f"/proc/{pid}/task"):
        os.sched_setaffinity(int(tid), every)


class _Front:
    """What the scenarios need of a server: its port."""

    def __init__(self, port: int) -> None:
        self.port = port


async def run_replicas(
    models_dir: Path, rounds: int, duration: float, log_dir: Path
) -> dict[str, dict[str, list[float]]]:
    model = next(m for m in find_models(models_dir) if not m.business_days)
    redis = Redis(log_dir / "redis-replicas")
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    results: dict[str, dict[str, list[float]]] = {"1 replica": {}, "2 replicas + nginx": {}}
    try:
        for r in range(rounds):
            order = list(results) if r % 2 == 0 else list(reversed(results))
            for setup in order:
                backend: dict[str, str | int] = {"state_backend": "redis", "redis_url": redis.url}
                replicas = [start_service(models_dir, log_dir, **backend)]
                nginx = None
                try:
                    front: Any = replicas[0]
                    if setup != "1 replica":
                        replicas.append(start_service(models_dir, log_dir, **backend))
                        for rep in replicas:
                            _unpin(rep.pid)
                        ports = [rep.port for rep in replicas]
                        nginx = Nginx(nginx_bin, log_dir / f"nginx-{r}", ports).start()
                        front = _Front(nginx.port)
                    for name, scenario in FIGURES[1:]:
                        value = await scenario(front, model, f"rep{len(replicas)}-r{r}", duration)
                        results[setup].setdefault(name, []).append(value)
                        print(f"round {r} {setup} {name}: {value:,.3f}", flush=True)
                finally:
                    if nginx is not None:
                        nginx.stop()
                    for rep in replicas:
                        rep.stop()
    finally:
        redis.stop()
    return results


async def run(
    models_dir: Path, rounds: int, duration: float, log_dir: Path
) -> tuple[dict[str, dict[str, list[float]]], list[float]]:
    """The backends' figures, and per round the floor: the 1-connection p50 of a bare
    ASGI server (bench/trivial_app.py) answering the same requests from the same client,
    on the same core: what this machine's network and client cost before any service."""
    model = next(m for m in find_models(models_dir) if not m.business_days)
    near = Redis(log_dir / "redis-near", core=0)
    far = Redis(log_dir / "redis-far", core=1)
    backends = {"memory": ("memory", None), "redis": ("redis", near.url), FAR: ("redis", far.url)}
    results: dict[str, dict[str, list[float]]] = {"memory": {}, "redis": {}, FAR: {}}
    floor: list[float] = []
    try:
        for r in range(rounds):
            with start_trivial(log_dir, "asgi") as trivial:
                floor.append(await _p50_one(trivial, model, f"floor-r{r}", duration))
                print(f"round {r} floor (bare ASGI) 1 conn p50 ms: {floor[-1]:,.3f}", flush=True)
            order = list(results) if r % 2 == 0 else list(reversed(results))
            for setup in order:
                backend, url = backends[setup]
                settings: dict[str, str | int] = {"state_backend": backend}
                if url is not None:
                    settings["redis_url"] = url
                with start_service(models_dir, log_dir, **settings) as server:
                    for name, scenario in FIGURES:
                        tag = f"{setup.replace(', ', '-').replace(' ', '')}-r{r}"
                        value = await scenario(server, model, tag, duration)
                        results[setup].setdefault(name, []).append(value)
                        print(f"round {r} {setup:17} {name}: {value:,.3f}", flush=True)
    finally:
        near.stop()
        far.stop()
    return results, floor


async def run_in_process(
    models_dir: Path, rounds: int, log_dir: Path
) -> tuple[dict[str, dict[str, list[float]]], dict[str, float]]:
    """The load-independent side: what a request costs the service in-process (CPU us
    and Python calls, bench.request_cost: no HTTP, no client) with each backend, and what
    the Redis calls cost Redis (INFO commandstats of the whole Redis run)."""
    import redis as redis_py

    manifest = (models_dir / "elec-demand" / "1" / "manifest.json").read_text()
    n_inputs = len(__import__("json").loads(manifest)["inputs"])
    server = Redis(log_dir / "redis-in-process")
    results: dict[str, dict[str, list[float]]] = {"memory": {}, "redis": {}}
    stats: dict[str, float] = {}
    try:
        with redis_py.Redis(host=HOST, port=server.port) as admin:
            for r in range(rounds):
                for backend in ["memory", "redis"] if r % 2 == 0 else ["redis", "memory"]:
                    admin.flushall()  # every run starts its streams at seq 0
                    admin.config_resetstat()
                    extra = {"state_backend": backend}
                    if backend == "redis":
                        extra["redis_url"] = server.url
                    out = await request_cost.measure(models_dir, "elec-demand", n_inputs, **extra)
                    for name, value in out.items():
                        results[backend].setdefault(name, []).append(value)
                    print(f"round {r} {backend:6} in-process: {out}", flush=True)
                    if backend == "redis":
                        cmd = admin.info("commandstats")
                        for name in ("evalsha", "mget", "getrange", "set"):
                            got = cmd.get(f"cmdstat_{name}", {})
                            stats[f"{name} calls"] = float(got.get("calls", 0))
                            stats[f"{name} us/call"] = float(got.get("usec_per_call", 0.0))
    finally:
        server.stop()
    return results, stats


def summarize(results: dict[str, dict[str, list[float]]]) -> list[dict[str, Any]]:
    """One row per figure: each setup's median (min..max), and every later setup's ratio
    to the first's median ("ratio" for the second, "<setup> ratio" for the others)."""
    first, *others = list(results)
    rows = []
    for name in results[first]:
        row: dict[str, Any] = {"figure": name}
        medians = {}
        for setup in (first, *others):
            values = results[setup][name]
            medians[setup] = statistics.median(values)
            row[setup] = f"{medians[setup]:,.3f} ({min(values):,.3f}..{max(values):,.3f})"
        for i, setup in enumerate(others):
            row["ratio" if i == 0 else f"{setup} ratio"] = round(medians[setup] / medians[first], 2)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--skip-replicas", action="store_true", help="backends only")
    parser.add_argument("--skip-http", action="store_true", help="the in-process table only")
    args = parser.parse_args(argv)
    pin_self_to_client_core()
    with tempfile.TemporaryDirectory(prefix="redis-bench-") as tmp:
        print(f"load before: {os.getloadavg()}", flush=True)
        cost, stats = asyncio.run(run_in_process(args.models, args.rounds, Path(tmp)))
        results = replicas = None
        floor: list[float] = []
        if not args.skip_http:
            results, floor = asyncio.run(run(args.models, args.rounds, args.duration, Path(tmp)))
        if not args.skip_http and not args.skip_replicas:
            replicas = asyncio.run(run_replicas(args.models, args.rounds, args.duration, Path(tmp)))
    rounds = f"median of {args.rounds} interleaved rounds (min..max)"
    columns = ["figure", "memory", "redis", "ratio"]
    title = f"In-process cost per request (bench.request_cost, load-independent): {rounds}"
    print(table(title, summarize(cost), columns))
    print("Redis commandstats over the last in-process Redis run:", stats)
    if results is not None:
        columns += [FAR, f"{FAR} ratio"]
        print(table(f"Redis vs memory backend: {rounds}", summarize(results), columns))
        print(
            f"Floor, a bare ASGI server (same client, requests and core), 1 conn p50 ms: "
            f"{statistics.median(floor):,.3f} ({min(floor):,.3f}..{max(floor):,.3f})"
        )
    if replicas is not None:
        columns = ["figure", "1 replica", "2 replicas + nginx", "ratio"]
        title = f"Redis backend, one replica vs two behind nginx on 2 cores: {rounds}"
        print(table(title, summarize(replicas), columns))
    print(f"load after: {os.getloadavg()}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
