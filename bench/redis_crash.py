"""What `kill -9` of redis-server loses, per `appendfsync` setting.

``python -m bench.redis_crash [--streams 200] [--steps 6]``: for each of `always` and
`everysec`, a fresh redis-server (AOF on) and the service on the Redis backend; a
producer (8 threads, retrying on 503 and connection errors until it gets 200) sends
every stream its observations; mid-way redis-server is killed with SIGKILL and started
again on the same port and directory (it replays its AOF). Afterwards the streams'
applied counts are summed: an acknowledged observation that Redis lost shows up as one
fewer applied (the next one is then stepped across a filled gap). Prints a table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import redis

from bench.payloads import Model, find_models
from bench.report import table
from bench.servers import HOST, free_port, start_service


def start_redis(port: int, workdir: Path, fsync: str) -> subprocess.Popen[bytes]:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", HOST, "--dir", str(workdir),
         "--appendonly", "yes", "--appendfsync", fsync, "--save", ""],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    with redis.Redis(host=HOST, port=port) as client:
        while True:
            try:
                client.ping()
                return proc
            except redis.exceptions.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


def run_one(model: Model, models_dir: Path, fsync: str, streams: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="redis-crash-") as tmp:
        port = free_port()
        proc = start_redis(port, Path(tmp), fsync)
        url = f"redis://{HOST}:{port}/0"
        acked = 0
        retries = 0
        lock = threading.Lock()
        with start_service(models_dir, Path(tmp), state_backend="redis", redis_url=url) as svc:
            base = f"http://{HOST}:{svc.port}"

            def drive(ids: list[str]) -> None:
                nonlocal acked, retries
                with httpx.Client(base_url=base, timeout=30) as c:
                    for k in range(steps):
                        for sid in ids:
                            while True:
                                try:
                                    r = c.post(model.stream_path(sid), content=model.one(k))
                                    if r.status_code == 200:
                                        break
                                except httpx.TransportError:
                                    pass
                                with lock:
                                    retries += 1
                                time.sleep(0.02)
                            with lock:
                                acked += 1

            ids = [f"crash-{fsync}-{i}" for i in range(streams)]
            with ThreadPoolExecutor(8) as pool:
                futures = [pool.submit(drive, ids[w::8]) for w in range(8)]
                while acked < streams * steps // 2:
                    time.sleep(0.002)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                killed_at = acked
                proc = start_redis(port, Path(tmp), fsync)
                for f in futures:
                    f.result()
            with httpx.Client(base_url=base, timeout=30) as c:
                applied = sum(
                    c.get(f"/v1/models/{model.name}/streams/{sid}").json()["count"] for sid in ids
                )
        proc.terminate()
        proc.wait()
    return {
        "appendfsync": fsync,
        "acknowledged": acked,
        "acked before the kill": killed_at,
        "applied": applied,
        "lost": acked - applied,
        "client retries": retries,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args(argv)
    model = next(m for m in find_models(args.models) if not m.business_days)
    rows = [
        run_one(model, args.models, fsync, args.streams, args.steps)
        for fsync in ("always", "everysec")
    ]
    columns = list(rows[0])
    print(table("kill -9 of redis-server mid-traffic: acknowledged vs applied", rows, columns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
