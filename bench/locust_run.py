"""`python -m bench.locust_run`: a headless locust run against a service we start.

The service runs pinned to one core, locust to the other; the per-endpoint summary is
printed and written to bench/results/locust.json. Extra arguments after `--` go to
locust. Exit status 1 if any request failed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from bench import report
from bench.__main__ import machine
from bench.servers import BENCH_ROOT, HOST, cpus, start_service

RESULTS = Path(__file__).parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.locust_run")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("-u", "--users", type=int, default=50)
    parser.add_argument("-r", "--spawn-rate", type=float, default=10)
    parser.add_argument("-t", "--run-time", default="30s")
    parser.add_argument("--model", help="BENCH_MODEL: the model users talk to")
    parser.add_argument("--out", type=Path, default=RESULTS / "locust.json")
    args, extra = parser.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    log_dir = RESULTS / "logs"
    prefix = log_dir / "locust"
    log_dir.mkdir(parents=True, exist_ok=True)
    client_cpus = cpus()[1]
    env = {**os.environ}
    if args.model:
        env["BENCH_MODEL"] = args.model
    with start_service(args.models_dir, log_dir) as server:
        cmd = [
            str(Path(sys.executable).parent / "locust"),
            "-f", str(Path(__file__).parent / "locustfile.py"),
            "--headless", "-u", str(args.users), "-r", str(args.spawn_rate),
            "-t", args.run_time, "--host", f"http://{HOST}:{server.port}",
            "--only-summary", "--csv", str(prefix), "--stop-timeout", "5",
            *extra,
        ]  # fmt: skip
        proc = subprocess.run(
            cmd,
            cwd=BENCH_ROOT,
            env=env,
            preexec_fn=lambda: os.sched_setaffinity(0, client_cpus),
            check=False,
        )
        rss_mb = round(server.rss() / 2**20, 1)
    with open(f"{prefix}_stats.csv") as f:
        rows = list(csv.DictReader(f))
    table = [
        {
            "endpoint": r["Name"],
            "requests": int(r["Request Count"]),
            "failures": int(r["Failure Count"]),
            "rps": round(float(r["Requests/s"]), 1),
            "p50_ms": float(r["50%"]),
            "p99_ms": float(r["99%"]),
            "avg_ms": round(float(r["Average Response Time"]), 2),
        }
        for r in rows
    ]
    result = {
        "machine": machine(),  # the run's date and commit
        "cadence_s": float(env.get("BENCH_CADENCE_S", "1.0")),
        "users": args.users,
        "spawn_rate": args.spawn_rate,
        "run_time": args.run_time,
        "service_rss_mb": rss_mb,
        "locust_exit": proc.returncode,
        "rows": table,
    }
    args.out.write_text(json.dumps(result, indent=1))
    print(report.table(f"locust: {args.users} users, {args.run_time}", table, list(table[0])))
    total = next((r for r in table if r["endpoint"] == "Aggregated"), table[-1])
    return 1 if total["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
