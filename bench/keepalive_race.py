"""`python -m bench.keepalive_race [--keep-alive S]`: a request sent on a keep-alive
connection just as the server's idle timer fires is lost ("connection closed", no
answer), which is what a client whose period equals the server's keep-alive sees.

The service is started with ``FORECAST_KEEP_ALIVE_SECONDS=S`` (default 1, to make the
race quick to see); each of 40 connections sends a request, stays idle 0.99..1.01 s,
then sends another. With S = 1 a large share of the second requests gets no answer;
with the default keep-alive (75 s, longer than any client's idle period) none is lost.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import time
from pathlib import Path

from bench.servers import HOST, REPO, start_service


def _answer(sock: socket.socket) -> bool:
    data = b""
    while b'"ok"}' not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return False
        data += chunk
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep-alive", default="1")
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    args = parser.parse_args()
    answered = lost = 0
    with (
        tempfile.TemporaryDirectory() as tmp,
        start_service(args.models_dir, Path(tmp), keep_alive_seconds=args.keep_alive) as s,
    ):
        request = f"GET /healthz HTTP/1.1\r\nHost: {HOST}:{s.port}\r\n\r\n".encode()
        for i in range(40):
            with socket.create_connection((HOST, s.port)) as sock:
                sock.sendall(request)
                assert _answer(sock)
                time.sleep(0.99 + (i % 5) * 0.005)
                try:
                    sock.sendall(request)
                    ok = _answer(sock)
                except OSError:
                    ok = False
                answered += ok
                lost += not ok
    print(
        f"keep-alive {args.keep_alive} s, idle 0.99..1.01 s, then a request: "
        f"{answered} answered, {lost} lost (connection closed)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
