"""`python -m bench.profile SCENARIO`: where the service's time goes under one load.

Starts the service (pinned), runs the scenario from the client core while py-spy samples
the server, and prints the functions with the most samples (self and inclusive). The
collapsed stacks are kept in bench/results/logs/profile-<scenario>.txt (feed them to a
flamegraph tool). Needs py-spy (`.venv/bin/pip install py-spy`).
Scenarios: one (1 observation per request, 16 connections), multi (1,000 streams per
request, 4 connections), stateless (168-observation history, 16 connections).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import uvloop

from bench import scenarios
from bench.__main__ import sensor_model
from bench.payloads import find_models
from bench.servers import pin_self_to_client_core, start_service

RESULTS = Path(__file__).parent / "results"


def top(collapsed: Path, n: int) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        total += c
        frames = stack.split(";")
        own[frames[-1]] += c
        for f in set(frames):
            incl[f] += c
    return total, own.most_common(n), incl.most_common(n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("scenario", choices=["one", "multi", "stateless"])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--detail",
        default="full",
        choices=["full", "median", "none"],
        help="multi: how much forecast the answers carry",
    )
    args = parser.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    pin_self_to_client_core()
    model = sensor_model(find_models(args.models_dir))
    log_dir = RESULTS / "logs"
    out = log_dir / f"profile-{args.scenario}-{args.detail}.txt"
    with start_service(args.models_dir, log_dir) as server:
        recorder = subprocess.Popen(
            [spy, "record", "--pid", str(server.pid), "--duration", str(int(args.seconds) + 1),
             "--format", "raw", "--output", str(out), "--nonblocking", "--rate", "250"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        if args.scenario == "one":
            coro = scenarios.one_obs(server, model, 16, args.seconds, "prof")
        elif args.scenario == "multi":
            coro = scenarios.multi(server, model, 1000, 4, args.seconds, args.detail)
        else:
            coro = scenarios.stateless(server, model, 168, 16, args.seconds)
        result = uvloop.run(coro)
        recorder.wait(timeout=60)
    print(result)
    total, own, incl = top(out, args.top)
    print(f"\n{total} samples; top by self time:")
    for name, c in own:
        print(f"{100 * c / total:6.1f}%  {name}")
    print("\ntop inclusive:")
    for name, c in incl:
        print(f"{100 * c / total:6.1f}%  {name}")
    print(f"\ncollapsed stacks: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
