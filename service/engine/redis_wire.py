"""One pipelined connection to one Redis server, for the state backend's hot path.

redis-py's asyncio client spends 100-150 us of Python per command (pool checkout, a
timeout task, its reader) where the round trip itself is ~50 us; with one write per
observation that was most of what the Redis backend added. This speaks RESP directly:
commands are packed and parsed by hiredis in C, written at once (no await), answered in
order through one future each, several in flight on the one connection.

Failure model: any connection error or a reply later than ``timeout`` fails EVERY
command in flight (their outcome is unknown) and closes the connection; the next call
reconnects. Error replies (OOM, READONLY, LOADING...) fail only their own command. The
registered scripts are loaded on every (re)connect, so EVALSHA never meets NOSCRIPT
unless an operator flushed the script cache meanwhile (that command fails, and the
connection is reset so the next one loads them again).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections import deque
from typing import Any, cast

import hiredis
from redis.connection import parse_url

ReplyError = hiredis.ReplyError


class _Protocol(asyncio.Protocol):
    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.reader = hiredis.Reader()
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiting = self.wire._waiting
        while (reply := reader.gets()) is not False:
            if not waiting:  # a reply nobody asked for: the stream is out of step
                self.wire._reset(ConnectionError("Redis sent an unexpected reply"))
                return
            future, timer = waiting.popleft()
            timer.cancel()
            if future.done():
                continue
            if isinstance(reply, ReplyError):
                if str(reply).startswith("NOSCRIPT"):
                    self.wire._reset(ConnectionError("Redis lost the scripts; reloading"))
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.wire._protocol is self:  # not an old connection the wire already reset
            self.wire._reset(ConnectionError(f"Redis connection lost: {exc or 'closed'}"))


class Wire:
    """``call(*args)`` returns a future of the reply; see the module docstring."""

    def __init__(self, url: str, timeout: float) -> None:
        opts = parse_url(url)
        self.host = opts.get("host", "localhost")
        self.port = int(opts.get("port", 6379))
        self.path: str | None = opts.get("path")
        self.tls = url.startswith("rediss://")
        self.username: str | None = opts.get("username")
        self.password: str | None = opts.get("password")
        self.db = int(opts.get("db", 0))
        self.timeout = timeout
        self.scripts: list[bytes] = []  # loaded on every connect
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._queued: list[tuple[bytes, asyncio.Future[Any]]] = []  # sent once connected
        self._waiting: deque[tuple[asyncio.Future[Any], asyncio.TimerHandle]] = deque()

    def call(self, *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        packed = hiredis.pack_command(args)
        protocol = self._protocol
        if protocol is not None and protocol.transport is not None:
            self._send(loop, protocol.transport, packed, future)
        else:
            self._queued.append((packed, future))
            if self._connecting is None:
                self._connecting = loop.create_task(self._connect())
        return future

    def _send(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.Transport,
        packed: bytes,
        future: asyncio.Future[Any],
    ) -> None:
        timer = loop.call_later(self.timeout, self._expire, future)
        self._waiting.append((future, timer))
        transport.write(packed)

    def _expire(self, future: asyncio.Future[Any]) -> None:
        if not future.done():
            self._reset(TimeoutError(f"Redis did not answer within {self.timeout} s"))

    def _reset(self, exc: Exception) -> None:
        """Fail everything in flight and drop the connection (the next call reconnects)."""
        protocol, self._protocol = self._protocol, None
        waiting, self._waiting = self._waiting, deque()
        for future, timer in waiting:
            timer.cancel()
            if not future.done():
                future.set_exception(exc)
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abort()

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            protocol = await asyncio.wait_for(self._open(loop), self.timeout)
            self._protocol = protocol
            assert protocol.transport is not None
            setup: list[tuple[Any, ...]] = []
            if self.password is not None:
                auth = (self.username, self.password) if self.username else (self.password,)
                setup.append(("AUTH", *auth))
            if self.db:
                setup.append(("SELECT", self.db))
            setup.extend(("SCRIPT", "LOAD", source) for source in self.scripts)
            replies = []
            for args in setup:
                future: asyncio.Future[Any] = loop.create_future()
                self._send(loop, protocol.transport, hiredis.pack_command(args), future)
                replies.append(future)
            await asyncio.gather(*replies)
        except BaseException as exc:  # whatever it was (even a cancel), nobody waits forever
            self._reset(ConnectionError(f"cannot connect to Redis: {exc!r}"))
            queued, self._queued = self._queued, []
            for _, future in queued:
                if not future.done():
                    future.set_exception(ConnectionError(f"cannot connect to Redis: {exc!r}"))
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        finally:
            self._connecting = None
        queued, self._queued = self._queued, []
        transport = protocol.transport
        for packed, future in queued:
            self._send(loop, transport, packed, future)

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Protocol:
        def factory() -> _Protocol:
            return _Protocol(self)

        if self.path is not None:
            _, protocol = await loop.create_unix_connection(factory, self.path)
        else:
            context = ssl.create_default_context() if self.tls else None
            _, protocol = await loop.create_connection(factory, self.host, self.port, ssl=context)
        return protocol

    async def close(self) -> None:
        """Fail what is in flight and wait until the socket is closed."""
        if self._connecting is not None:
            self._connecting.cancel()
        protocol = self._protocol
        self._reset(ConnectionError("closed"))
        if protocol is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(protocol.closed, self.timeout)
