"""`python -m bench [--quick]`: the service against the floor and against what users
would build instead, side by side in one run. Prints tables and ratios, writes
bench/results/<mode>.json. Speed is reported here, never asserted in tests.

The machine is shared, so every headline ratio is taken in each of `rounds`
interleaved rounds (all compared servers run at once, each measured in turn, the order
rotating every round) and reported as the median with its min and max."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import uvloop

from bench import floor, report, scenarios, server_metrics
from bench.payloads import Model, find_models
from bench.servers import (
    HOST,
    Server,
    cpus,
    pin_self_to_client_core,
    start_naive,
    start_service,
    start_trivial,
)
from bench.ws_load import run_ws

RESULTS = Path(__file__).parent / "results"


@dataclass
class Plan:
    mode: str
    rounds: int = 3  # interleaved rounds behind every headline ratio (median, min, max)
    floor_batches: list[int] = field(default_factory=lambda: [1, 8, 64, 256, 1024, 4096])
    floor_budget_s: float = 0.3
    duration_s: float = 3.0
    concurrency: list[int] = field(default_factory=lambda: [1, 16, 64])
    ratio_concurrency: int = 16
    # (streams per request, connections, forecast detail in the answers)
    multi: list[tuple[int, int, str]] = field(
        default_factory=lambda: [
            (100, 4, "full"),
            (1000, 4, "full"),
            (1000, 4, "median"),
            (1000, 4, "none"),
        ]
    )
    ws: list[tuple[int, int]] = field(default_factory=lambda: [(1, 64), (4, 64)])
    stateless_concurrency: list[int] = field(default_factory=lambda: [1, 16])
    window: int = 168
    depths: list[int] = field(default_factory=lambda: [10, 1000, 100_000])
    scaling_rounds: int = 300
    memory_targets: list[int] = field(default_factory=lambda: [10_000, 100_000])


PLANS = {
    "quick": Plan("quick"),
    "full": Plan(
        "full",
        floor_budget_s=1.5,
        duration_s=10.0,
        scaling_rounds=1500,
        memory_targets=[10_000, 100_000, 1_000_000],
    ),
}


def machine() -> dict[str, Any]:
    import fastapi
    import onnxruntime
    import uvicorn

    cpu = "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in out.splitlines() if "Model name" in ln), cpu
        )
    except OSError:
        pass
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        if dirty:  # figures of uncommitted code cannot be traced to a commit
            rev += "+uncommitted"
    except OSError:
        rev = "unknown"
    server_cpus, client_cpus = cpus()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "server_cpus": sorted(server_cpus),
        "client_cpus": sorted(client_cpus),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "fastapi": fastapi.__version__,
        "uvicorn": uvicorn.__version__,
        "git": rev,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def sensor_model(models: list[Model]) -> Model:
    """The model the service scenarios run on: elec-demand, else the first non-stock one."""
    for m in models:
        if m.name == "elec-demand":
            return m
    return next((m for m in models if m.manifest["frequency"] != "B"), models[0])


class ClientCpu:
    """Share of one core this (client) process used while a load ran: near 100% would
    mean the load generator, not the server, set the pace."""

    def __enter__(self) -> ClientCpu:
        self.t = time.perf_counter()
        self.c = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.pct = round(100 * (time.process_time() - self.c) / (time.perf_counter() - self.t))


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def run(plan: Plan, models_dir: Path, log_dir: Path) -> dict[str, Any]:
    models = find_models(models_dir)
    if not models:
        raise SystemExit(f"no artifacts under {models_dir} (expected <name>/<version>/)")
    main = sensor_model(models)
    r: dict[str, Any] = {
        "mode": plan.mode,
        "plan": asdict(plan),
        "machine": machine(),
        "models_dir": str(models_dir),
        "models": {m.name: m.version_dir.name for m in models},
        "service_model": main.name,
        "ratio_concurrency": plan.ratio_concurrency,
        "naive_window": plan.window,
        "notes": [],
    }

    log("floor: raw ORT step")
    r["floor"] = {m.name: floor.measure(m, plan.floor_batches, plan.floor_budget_s) for m in models}
    r["floor_sequence"] = [
        {
            "model": m.name,
            "steps": plan.window,
            "us_per_call": floor.sequence_us(m, plan.window, plan.floor_budget_s),
        }
        for m in models
    ]

    async def one_obs_row(server: Server, tag: str, c: int) -> dict[str, Any]:
        before = await server_metrics.snapshot(server, main.name)
        with ClientCpu() as cpu:
            row = await scenarios.one_obs(server, main, c, plan.duration_s, tag, prime=plan.window)
        seen = server_metrics.delta(before, await server_metrics.snapshot(server, main.name))
        return {**row, "client_cpu_pct": cpu.pct, **seen}

    log("starting every compared server (one launcher, same uvicorn settings)")
    with (
        start_trivial(log_dir, "asgi") as asgi,
        start_trivial(log_dir, "fastapi") as fastapi_server,
        start_naive(models_dir, log_dir, plan.window) as naive,
        start_service(models_dir, log_dir) as server,
    ):
        health = await _get_json(naive.port, "/healthz")
        r["naive_weights"] = health.get("weights", {}).get(main.name)
        r["notes"].append(f"naive service weights for {main.name}: {r['naive_weights']}")
        r["machine"]["service_affinity"] = server.affinity()
        r["machine"]["bench_client_affinity"] = sorted(os.sched_getaffinity(0))
        compared = [
            ("service", server),
            ("trivial_asgi", asgi),
            ("trivial_fastapi", fastapi_server),
            ("naive", naive),
        ]
        r["one_obs_rounds"] = []
        for k in range(plan.rounds):
            order = compared[k % len(compared) :] + compared[: k % len(compared)]
            log(
                f"one observation per request, round {k + 1}/{plan.rounds}: "
                + ", ".join(n for n, _ in order)
            )
            for name, srv in order:
                for c in plan.concurrency:
                    row = await one_obs_row(srv, f"{name}-r{k}", c)
                    r["one_obs_rounds"].append({"round": k, "server": name, **row})
        r["one_obs"] = report.summarise_rounds(r["one_obs_rounds"])
        r["other_models"] = []
        for m in models:
            if m is not main:
                row = await scenarios.one_obs(
                    server, m, plan.ratio_concurrency, plan.duration_s, "other"
                )
                r["other_models"].append({"model": m.name, **row})
        r["multi"] = []
        r["multi_ceiling"] = []
        for k in range(plan.rounds):
            log(f"multi-stream, round {k + 1}/{plan.rounds} (with the ORT ceiling at B=1024)")
            ceiling = floor.measure(main, [1024], plan.floor_budget_s)[0]["steps_per_s"]
            r["multi_ceiling"].append({"round": k, "steps_per_s": ceiling})
            for streams, conc, detail in plan.multi:
                before = await server_metrics.snapshot(server, main.name)
                with ClientCpu() as cpu:
                    row = await scenarios.multi(
                        server, main, streams, conc, plan.duration_s, detail, tag=f"r{k}"
                    )
                seen = server_metrics.delta(
                    before, await server_metrics.snapshot(server, main.name)
                )
                r["multi"].append({"round": k, **row, "client_cpu_pct": cpu.pct, **seen})
        log("service: websocket")
        r["websocket"] = []
        for conns, streams in plan.ws:
            with ClientCpu() as cpu:
                row = await run_ws(HOST, server.port, main, conns, streams, plan.duration_s)
            r["websocket"].append({**row, "client_cpu_pct": cpu.pct})
        log("service: stateless forecast")
        r["stateless"] = []
        for c in plan.stateless_concurrency:
            before = await server_metrics.snapshot(server, main.name)
            row = await scenarios.stateless(server, main, plan.window, c, plan.duration_s)
            seen = server_metrics.delta(before, await server_metrics.snapshot(server, main.name))
            r["stateless"].append({**row, **seen})
        log("service: scaling with stream length")
        r["scaling"] = await scenarios.scaling(
            server, main, plan.depths, plan.scaling_rounds, max_history=10_000, parts=plan.rounds
        )

    log("service: memory per live stream")
    top = max(plan.memory_targets)
    with start_service(
        models_dir, log_dir, max_streams=int(top * 1.1) + 10_000, queue_rows=65_536
    ) as server:
        r["memory"] = await scenarios.memory(server, main, plan.memory_targets)
        r["memory"]["model"] = main.name

    r["ratios"] = report.ratios(r)
    return r


async def _get_json(port: int, path: str) -> dict[str, Any]:
    from bench import client

    status, body = await client.request(HOST, port, "GET", path)
    return json.loads(body) if status == 200 else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few minutes (default: full)")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--out", type=Path, help="JSON path (default bench/results/<mode>.json)")
    args = parser.parse_args(argv)
    plan = PLANS["quick" if args.quick else "full"]
    pin_self_to_client_core()
    RESULTS.mkdir(parents=True, exist_ok=True)
    log_dir = RESULTS / "logs"
    t0 = time.perf_counter()
    results = uvloop.run(run(plan, args.models_dir, log_dir))
    results["seconds"] = round(time.perf_counter() - t0, 1)
    out = args.out or RESULTS / f"{plan.mode}.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(out)
    text = report.render(results)
    out.with_suffix(".md").write_text(text)
    print(text)
    print(f"written {out} (and .md) in {results['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
