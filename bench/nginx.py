"""deploy/nginx/forecast.conf run by a real nginx (the Debian package) on a free port,
with its upstream servers pointed at replicas on 127.0.0.1; stopped by pid. Used by
bench.redis_bench (replicas behind nginx) and tests/service/test_replicas_nginx.py."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
NGINX_CONF = ROOT / "deploy" / "nginx" / "forecast.conf"


def render(conf: str, port: int, upstreams: list[int]) -> str:
    """The deployed file with its listen port and upstream servers replaced."""
    servers = re.findall(r"^\s*server forecast-\d+:8000[^;]*;", conf, flags=re.M)
    assert len(servers) == len(upstreams), servers
    for line, up in zip(servers, upstreams, strict=True):
        conf = conf.replace(line, re.sub(r"forecast-\d+:8000", f"127.0.0.1:{up}", line), 1)
    assert conf.count("listen 8000;") == 1
    return conf.replace("listen 8000;", f"listen 127.0.0.1:{port};")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Nginx:
    def __init__(self, binary: str, workdir: Path, upstreams: list[int]) -> None:
        self.binary = binary
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.dir / "forecast.conf").write_text(
            render(NGINX_CONF.read_text(), self.port, upstreams)
        )
        kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        temp = " ".join(f"{kind}_temp_path {self.dir / kind};" for kind in kinds)
        # Started by root, nginx would run its workers as "nobody", who cannot reach the
        # private temp directory its large bodies and answers are buffered in.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (self.dir / "nginx.conf").write_text(
            f"{user}worker_processes 1;\ndaemon off;\npid {self.dir / 'nginx.pid'};\n"
            f"error_log {self.dir / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            f"http {{ access_log off; {temp} include {self.dir / 'forecast.conf'}; }}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Nginx:
        cmd = [self.binary, "-p", str(self.dir), "-e", str(self.dir / "error.log"),
               "-c", str(self.dir / "nginx.conf")]  # fmt: skip
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{self.url}/nginx-health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not start:\n{self.error_log()}")
            time.sleep(0.02)

    def error_log(self) -> str:
        path = self.dir / "error.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
