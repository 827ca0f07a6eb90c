"""A real redis-server (the Debian package) on 127.0.0.1 and a free port, for the tests.

Started with its own data directory and AOF on, stopped (or killed, or paused) by pid;
also a real Redis Cluster of such servers.
Missing binary: the test FAILS saying what to install; it never skips.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require(name: str, debian_path: str) -> str:
    found = shutil.which(name) or (debian_path if Path(debian_path).exists() else None)
    if found is None:
        pytest.fail(
            f"`{name}` not found: install the Debian package (`make system-deps` does)",
            pytrace=False,
        )
    return found


class RedisServer:
    def __init__(self, data_dir: Path, appendfsync: str = "everysec") -> None:
        self.binary = require("redis-server", "/usr/bin/redis-server")
        self.dir = data_dir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.appendfsync = appendfsync
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra: list[str] = []  # more redis-server arguments (cluster mode)
        self.password: str | None = None  # requirepass, if set

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, socket_timeout=5
        )

    def start(self) -> RedisServer:
        cmd = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.dir), "--appendonly", "yes", "--appendfsync", self.appendfsync,
            "--save", "", "--logfile", str(self.dir / "redis.log"), "--daemonize", "no",
            *self.extra, *(["--requirepass", self.password] if self.password else []),
        ]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        client = self.client()
        while True:
            try:
                if client.ping():
                    break
            except redis.exceptions.RedisError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                logfile = self.dir / "redis.log"
                log = logfile.read_text() if logfile.exists() else ""
                raise RuntimeError(f"redis-server did not start:\n{log[-2000:]}")
            time.sleep(0.02)
        client.close()
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.proc = None

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=20)
        self.proc = None

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


class RedisCluster:
    """A real Redis Cluster: `nodes` redis-server processes in cluster mode on free ports
    (no replicas), their slots assigned by `redis-cli --cluster create`; stopped by pid."""

    def __init__(self, data_dir: Path, nodes: int = 3) -> None:
        self.cli = require("redis-cli", "/usr/bin/redis-cli")
        self.servers = [RedisServer(data_dir / f"node{i}") for i in range(nodes)]

    @property
    def url(self) -> str:
        return self.servers[0].url  # any node: the client discovers the others

    def start(self) -> RedisCluster:
        for server in self.servers:
            server.extra = [
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(server.dir / "nodes.conf"),
                "--cluster-node-timeout", "5000",
                # Its own free bus port (the default, port + 10000, may be taken or > 65535).
                "--cluster-port", str(free_port()),
            ]  # fmt: skip
            server.start()
        addresses = [f"127.0.0.1:{s.port}" for s in self.servers]
        subprocess.run(
            [self.cli, "--cluster", "create", *addresses, "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        for server in self.servers:  # every node must know every slot's owner
            with server.client() as client:
                while client.cluster("info").get("cluster_state") != "ok":
                    if time.monotonic() > deadline:
                        raise RuntimeError("the Redis Cluster did not become ready")
                    time.sleep(0.05)
        return self

    def keys_per_node(self, pattern: str) -> list[int]:
        counts = []
        for server in self.servers:
            with server.client() as client:
                counts.append(len(client.keys(pattern)))
        return counts

    def script_calls(self) -> int:
        """EVALSHA calls that ran, summed over the nodes."""
        total = 0
        for server in self.servers:
            with server.client() as client:
                stats = client.info("commandstats").get("cmdstat_evalsha", {})
            total += int(stats.get("calls", 0)) - int(stats.get("failed_calls", 0))
        return total

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
