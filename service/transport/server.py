"""How uvicorn serves the app: its own limits, plus the two it lacks.

uvicorn has a keep-alive timeout and a connection limit (``limit_concurrency``: 503
beyond it) but no bound on how long a request may take to arrive, nor on the size of a
request head with httptools. ``GuardedHttp`` adds both to uvicorn's httptools protocol:
a request (head and body, from its first byte or from the connection opening) must
arrive within ``read_timeout_seconds`` or the connection is closed (so half-open or
trickling sockets cannot pile up), and a head over ``max_header_bytes`` gets 431. Both,
and the parser's own 400s, are counted in ``forecast_connection_refusals_total``.
The probes (/healthz, /readyz) are answered in the read callback itself (``probe``,
built by the app with the same Host rule and metrics), so they never wait behind the
request tasks of the same loop turn.
After a request refused for load, share or key (limits.BACKOFF_KEY) has been answered,
the connection reads nothing more for ``refusal_backoff_seconds``: the refusal itself
goes out at once, but a client that retries at once waits, so refusals stay cheap.
``python -m service`` and the test servers build their uvicorn config here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.metrics import Family
from service.settings import Settings
from service.transport.limits import BACKOFF_KEY

# (path, Host header) -> the probe's (status, body, headers), or None: not for it.
Probe = Callable[[bytes, bytes | None], tuple[int, bytes, dict[str, str]] | None]


def guarded_http(
    read_timeout: float, max_head: int, refusals: Family, probe: Probe | None = None
) -> type[HttpToolsProtocol]:
    class GuardedHttp(HttpToolsProtocol):
        _timer: asyncio.TimerHandle | None = None
        _head = 0
        _probed = False  # this request was a probe, answered from the read callback

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._timer is None:
                self._timer = self.loop.call_later(read_timeout, self._too_slow)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _too_slow(self) -> None:
            self._timer = None
            if not self.transport.is_closing():
                refusals.labels("read_timeout").inc()
                self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head = 0
            self._arm()

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def _count(self, n: int) -> None:
            self._head += n
            if self._head > max_head:
                raise _HeadTooLarge  # httptools turns it into a parser error

        def on_response_complete(self) -> None:
            super().on_response_complete()
            scope: Any = self.scope
            backoff = scope.get(BACKOFF_KEY) if scope is not None else None
            if backoff and not self.transport.is_closing():
                self.flow.pause_reading()  # the answer went out; the next request waits
                self.loop.call_later(backoff, self._resume)

        def _resume(self) -> None:
            if not self.transport.is_closing():
                self.flow.resume_reading()

        def on_headers_complete(self) -> None:
            if probe is None or not self._answer_probe(probe):
                super().on_headers_complete()

        def _answer_probe(self, probe: Probe) -> bool:
            """/healthz and /readyz answered right here, in the read callback: under load
            they never wait behind the request tasks created in the same loop turn."""
            if self.parser.get_method() != b"GET" or self.parser.get_http_version() != "1.1":
                return False
            if self.cycle is not None and not self.cycle.response_complete:
                return False  # pipelined behind a request still running: answers in order
            host = None
            for name, value in self.headers:
                if name == b"host":
                    host = value
            answer = probe(self.url.partition(b"?")[0], host)
            if answer is None:
                return False  # not a probe, or a Host the guard must refuse
            status, data, headers = answer
            keep = self.parser.should_keep_alive()
            head = [
                b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode()),
                b"content-type: application/json\r\ncontent-length: %d\r\n" % len(data),
            ]
            head.extend(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers.items())
            if not keep:
                head.append(b"connection: close\r\n")
            self.transport.write(b"".join(head) + b"\r\n" + data)
            self._probed = True
            return True

        def on_body(self, body: bytes) -> None:
            if not self._probed:
                super().on_body(body)

        def on_message_complete(self) -> None:
            self._disarm()
            if self._probed:
                self._probed = False
                if not self.parser.should_keep_alive():
                    self.transport.close()
                else:
                    self.on_response_complete()  # keep-alive timer, pipelined requests
                return
            super().on_message_complete()

        def handle_websocket_upgrade(self) -> None:
            self._disarm()  # the WebSocket protocol takes the connection over
            super().handle_websocket_upgrade()

        def data_received(self, data: bytes) -> None:
            # uvicorn's, plus the 431 and the counting.
            self._unset_keepalive_if_required()
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
            except httptools.HttpParserError as exc:
                self._disarm()
                if isinstance(exc.__context__, _HeadTooLarge):
                    refusals.labels("header_too_large").inc()
                    self._refuse(b"431 Request Header Fields Too Large", b"headers too large")
                else:
                    refusals.labels("bad_request").inc()
                    self.send_400_response("Invalid HTTP request received.")

        def _refuse(self, status: bytes, text: bytes) -> None:
            self.transport.write(
                b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
                b"content-length: "
                + str(len(text)).encode()
                + b"\r\nconnection: close\r\n\r\n"
                + text
            )
            self.transport.close()

    return GuardedHttp


class _HeadTooLarge(Exception):
    pass


def uvicorn_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The service's uvicorn config (``overrides``: e.g. log_level for tests)."""
    refusals = app.state.service.metrics.connection_refusals
    probe = getattr(app.state, "probe", None)
    http = guarded_http(settings.read_timeout_seconds, settings.max_header_bytes, refusals, probe)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": http,
        "ws": "websockets-sansio",
        "ws_max_size": settings.max_body_bytes,
        "log_level": settings.log_level,
        "access_log": False,  # per-request logging costs more than the model step
        "timeout_graceful_shutdown": 10,
        "timeout_keep_alive": settings.keep_alive_seconds,
        "limit_concurrency": settings.max_connections,
        "proxy_headers": settings.proxy_headers,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)
