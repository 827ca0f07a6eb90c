"""Servers under test: subprocesses we start, pin to their own core, and stop by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
# This checkout (the launcher and the other apps run from it) and the checkout whose
# service is served (bench.compare_trees points REPO at another one).
BENCH_ROOT = Path(__file__).resolve().parents[1]
REPO = BENCH_ROOT
SERVER_CPU = 0
CLIENT_CPU = 1


# Read once at import, before this process pins itself to the client core.
_AVAILABLE = sorted(os.sched_getaffinity(0))


def cpus() -> tuple[set[int], set[int]]:
    """(server cores, client cores): separate when the machine has two or more."""
    available = _AVAILABLE
    if len(available) < 2:
        return set(available), set(available)
    return {available[SERVER_CPU]}, {available[CLIENT_CPU]}


def pin_self_to_client_core() -> None:
    os.sched_setaffinity(0, cpus()[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return rss_bytes(self.pid)

    def affinity(self) -> list[int]:
        return sorted(os.sched_getaffinity(self.pid))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _start(
    name: str,
    args: list[str],
    env: dict[str, str],
    port: int,
    ready_path: str,
    log_dir: Path,
    cores: set[int] | None = None,
) -> Server:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}-{port}.log"
    server_cpus = cores or cpus()[0]
    full_env = {**os.environ, **env}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *args],
            env=full_env,
            cwd=BENCH_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Before exec, so every thread the server ever starts (ORT's too) inherits it.
            preexec_fn=lambda: os.sched_setaffinity(0, server_cpus),
        )
    server = Server(name, proc, port, log)
    deadline = time.monotonic() + 120
    url = f"http://{HOST}:{port}{ready_path}"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; log:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{name} not ready after 120 s; log:\n{log.read_text()}")


def _start_app(
    app: str, log_dir: Path, env: dict[str, str], *extra: str, cores: set[int] | None = None
) -> Server:
    """Every compared server through the one launcher (bench/serve.py)."""
    port = free_port()
    args = ["-m", "bench.serve", app, "--port", str(port), *extra]
    ready = "/readyz" if app == "service" else "/healthz"
    return _start(app, args, env, port, ready, log_dir, cores)


def start_service(
    models_dir: Path, log_dir: Path, cores: set[int] | None = None, **settings: str | int
) -> Server:
    """The service pinned to the server core (``cores``: to these instead, e.g. every
    core, to measure what ORT's own thread gains when it may run beside the loop)."""
    env = {
        "FORECAST_MODELS_DIR": str(Path(models_dir).resolve()),
        "FORECAST_SNAPSHOT_PATH": "",  # every run starts empty and leaves nothing behind
        "FORECAST_LOG_LEVEL": "warning",
        "FORECAST_AUTH_DISABLED": "true",  # benchmarks measure the API, not key lookups
    }
    env.update({f"FORECAST_{k.upper()}": str(v) for k, v in settings.items()})
    if REPO != BENCH_ROOT:
        env["BENCH_SERVICE_TREE"] = str(REPO)
    return _start_app("service", log_dir, env, cores=cores)


def start_trivial(log_dir: Path, kind: str = "fastapi") -> Server:
    """kind: "fastapi" (a FastAPI route) or "asgi" (a bare ASGI callable)."""
    return _start_app(f"trivial-{kind}", log_dir, {})


def start_naive(models_dir: Path, log_dir: Path, window: int) -> Server:
    extra = ["--models-dir", str(models_dir), "--window", str(window)]
    return _start_app("naive", log_dir, {}, *extra)
