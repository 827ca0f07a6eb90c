"""`python -m bench.compare_trees BEFORE_DIR AFTER_DIR`: the service of two checkouts
(e.g. `git worktree add /tmp/before <commit>`) side by side, for a change that must not
cost speed. Both servers start with the same settings, pinned to the same core; the key
rows run in interleaved rounds (before, after, before, ...) and each figure is reported
as the median of the rounds with its min..max, plus the ratio after/before of the medians.
Writes bench/results/compare-<date>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

from bench import scenarios, servers
from bench.__main__ import RESULTS, log, machine, sensor_model
from bench.payloads import find_models

ROWS = (
    ("1 obs/request, conc. 1: p50 ms", "p50"),
    ("1 obs/request, conc. 16: req/s", "rps16"),
    ("multi-stream 1000 x 4 conns, full: updates/s", "multi_full"),
    ("multi-stream 1000 x 4 conns, none: updates/s", "multi_none"),
)


def start(tree: Path, models_dir: Path, log_dir: Path) -> servers.Server:
    # The server runs from the given checkout: `python -m service` imports the package
    # from its working directory before the installed one.
    servers.REPO = tree
    return servers.start_service(models_dir, log_dir)


async def one_round(server: servers.Server, model: Any, tag: str, seconds: float) -> dict:
    p50 = await scenarios.one_obs(server, model, 1, seconds, f"{tag}a")
    rps = await scenarios.one_obs(server, model, 16, seconds, f"{tag}b")
    full = await scenarios.multi(server, model, 1000, 4, seconds, "full")
    none = await scenarios.multi(server, model, 1000, 4, seconds, "none")
    return {
        "p50": p50["p50_ms"],
        "rps16": rps["rps"],
        "multi_full": full["stream_updates_per_s"],
        "multi_none": none["stream_updates_per_s"],
    }


async def memory(server: servers.Server, model: Any) -> float:
    result = await scenarios.memory(server, model, [20_000])
    return float(result["rows"][-1]["bytes_per_stream"])


def request_cost(tree: Path, models_dir: Path) -> dict[str, float]:
    """bench.request_cost run against the checkout's own service package (it imports
    the service from its working directory)."""
    script = Path(__file__).with_name("request_cost.py")
    code = (
        "import runpy, sys; sys.argv = ['request_cost', sys.argv[1]]; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(models_dir)],
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


async def run(trees: dict[str, Path], models_dir: Path, rounds: int, seconds: float) -> dict:
    model = sensor_model(find_models(models_dir))
    log_dir = RESULTS / "logs"
    figures: dict[str, dict[str, list[float]]] = {k: {r[1]: [] for r in ROWS} for k in trees}
    running = {name: start(tree, models_dir, log_dir) for name, tree in trees.items()}
    try:
        for r in range(rounds):
            for name, server in running.items():
                log(f"round {r + 1}/{rounds}: {name}")
                row = await one_round(server, model, f"r{r}{name}", seconds)
                for key, value in row.items():
                    figures[name][key].append(float(value))
    finally:
        for server in running.values():
            server.stop()
    costs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for r in range(rounds):  # in-process cost per request, interleaved too
        for name, tree in trees.items():
            log(f"request cost {r + 1}/{rounds}: {name}")
            costs[name].append(request_cost(tree, models_dir))
    bytes_per_stream: dict[str, float] = {}
    for name, tree in trees.items():  # a fresh server each: memory wants an empty store
        server = start(tree, models_dir, log_dir)
        try:
            bytes_per_stream[name] = await memory(server, model)
        finally:
            server.stop()
    return {
        "machine": machine(),
        "trees": {k: str(v) for k, v in trees.items()},
        "rounds": rounds,
        "seconds_per_row": seconds,
        "figures": {k: {m: summary(v) for m, v in f.items()} for k, f in figures.items()},
        "raw": figures,
        "bytes_per_stream_20k": bytes_per_stream,
        "request_cost": {
            name: {k: summary([c[k] for c in rows]) for k in rows[0]}
            for name, rows in costs.items()
        },
    }


def render(result: dict) -> str:
    before, after = result["figures"]["before"], result["figures"]["after"]
    lines = [
        "| figure | before: median (min..max) | after: median (min..max) | after/before |",
        "| --- | ---: | ---: | ---: |",
    ]
    for title, key in ROWS:
        b, a = before[key], after[key]
        lines.append(
            f"| {title} | {b['median']:.5g} ({b['min']:.5g}..{b['max']:.5g}) | "
            f"{a['median']:.5g} ({a['min']:.5g}..{a['max']:.5g}) | "
            f"{a['median'] / b['median']:.3f} |"
        )
    for key, cost in result["request_cost"]["before"].items():
        b, a = cost, result["request_cost"]["after"][key]
        lines.append(
            f"| in-process {key} | {b['median']:.5g} ({b['min']:.5g}..{b['max']:.5g}) | "
            f"{a['median']:.5g} ({a['min']:.5g}..{a['max']:.5g}) | "
            f"{a['median'] / b['median']:.3f} |"
        )
    mem = result["bytes_per_stream_20k"]
    lines.append(
        f"| bytes per live stream (20k streams) | {mem['before']:.0f} | {mem['after']:.0f} | "
        f"{mem['after'] / mem['before']:.3f} |"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    servers.pin_self_to_client_core()
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    result = uvloop.run(run(trees, args.models_dir.resolve(), args.rounds, args.seconds))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"compare-{time.strftime('%Y%m%d-%H%M')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
