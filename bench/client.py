"""A lean HTTP/1.1 keep-alive load generator on raw asyncio protocols.

httpx costs more per request than the server under test, so the harness speaks HTTP
itself: one asyncio.Protocol per connection, one request in flight per connection,
Content-Length framing only (every server we measure answers that way).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# Builds the body of the i-th request on connection `conn`.
BodyFn = Callable[[int, int], bytes]


class _Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = exc or ConnectionResetError("server closed the connection")
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(self.closed)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None or self.waiter.done():
            return
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = bytes(self.buf[:head_end])
        length = _content_length(head)
        end = head_end + 4 + length
        if len(self.buf) < end:
            return
        status = int(head[9:12])
        body = bytes(self.buf[head_end + 4 : end])
        del self.buf[:end]
        self.waiter.set_result((status, body))

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.closed is not None:
            raise self.closed
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(raw)
        return await self.waiter


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
        if name.strip().lower() == b"transfer-encoding":
            raise RuntimeError("chunked responses are not supported by the bench client")
    return 0


def build_request(method: str, path: str, body: bytes | None, host: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}"]
    if body is not None:
        lines += ["content-type: application/json", f"content-length: {len(body)}"]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return head + (body or b"")


async def connect(host: str, port: int) -> _Conn:
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(_Conn, host, port)
    return proto


async def request(
    host: str, port: int, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    """One request on a fresh connection (set-up calls, not measurements)."""
    conn = await connect(host, port)
    try:
        return await conn.request(build_request(method, path, body, f"{host}:{port}"))
    finally:
        assert conn.transport is not None
        conn.transport.close()


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_s: np.ndarray
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        if len(self.latencies_s) == 0:
            return float("nan")
        return float(np.percentile(self.latencies_s, q) * 1e3)

    def summary(self) -> dict[str, float | int | dict[str, int]]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rps": round(self.rps, 1),
            "p50_ms": round(self.percentile_ms(50), 3),
            "p99_ms": round(self.percentile_ms(99), 3),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors,
        }


async def run_load(
    host: str,
    port: int,
    path: str | Callable[[int, int], str],
    body: BodyFn | None,
    concurrency: int,
    duration_s: float,
    warmup_s: float = 0.5,
    method: str = "POST",
    max_requests: int | None = None,
    check: Callable[[bytes], bool] | None = None,
) -> LoadResult:
    """`concurrency` keep-alive connections, each sending its next request as soon as the
    previous answer arrived, for warmup_s (not counted) then duration_s (longer when a
    connection has not had one measured request by then); rates are over the time the
    measured requests took."""
    hostport = f"{host}:{port}"
    conns = [await connect(host, port) for _ in range(concurrency)]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = {"errors": 0, "n": 0}
    t_start = time.perf_counter()
    t_measure = t_start + warmup_s
    t_end = t_measure + duration_s

    async def worker(ci: int, conn: _Conn) -> None:
        i = measured = 0
        perf = time.perf_counter
        while True:
            now = perf()
            if max_requests is not None and counter["n"] >= max_requests:
                return
            # Until the window closes, and at least one measured request per connection:
            # on a loaded machine one request can outlast the whole window.
            if now >= t_end and measured:
                return
            p = path if isinstance(path, str) else path(ci, i)
            raw = build_request(method, p, body(ci, i) if body else None, hostport)
            t0 = perf()
            try:
                status, answer = await conn.request(raw)
            except (ConnectionError, OSError):
                counter["errors"] += 1
                return
            t1 = perf()
            i += 1
            if check is not None and not check(answer):
                counter["errors"] += 1
            if t0 >= t_measure:
                latencies.append(t1 - t0)
                statuses[status] = statuses.get(status, 0) + 1
                counter["n"] += 1
                measured += 1

    await asyncio.gather(*(worker(ci, c) for ci, c in enumerate(conns)))
    # The requests that started in the window have all been answered: their time.
    elapsed = time.perf_counter() - t_measure
    for c in conns:
        if c.transport is not None:
            c.transport.close()
    return LoadResult(
        requests=len(latencies),
        seconds=max(elapsed, 1e-9),
        latencies_s=np.asarray(latencies),
        statuses=statuses,
        errors=counter["errors"],
    )
