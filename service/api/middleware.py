"""Pure ASGI middleware: body-size limit, request metrics, and the hot-path shortcut.

Pure ASGI rather than BaseHTTPMiddleware: it adds a few microseconds, not a task per
request, and sees the matched route template (FastAPI puts it in scope["route"]).

The two observation POSTs are what producers call thousands of times a second. For
them FastAPI's routing, Request and Response objects cost more than the model step
(DESIGN §6), so they are answered here straight from ASGI messages by the same handler
functions the FastAPI routes use (api/handlers.py); behaviour is identical either way.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api import handlers
from service.api.http import MANY_ROUTE, STREAM_ROUTE
from service.api.responses import error_response
from service.core import ForecastService
from service.errors import PayloadTooLarge

UNMATCHED = "<unmatched>"  # one label for every unknown path, to bound cardinality
_JSON = (b"content-type", b"application/json")


class LimitAndMeasure:
    def __init__(self, app: ASGIApp, service: ForecastService, max_body_bytes: int) -> None:
        self.app = app
        self.service = service
        self.metrics = service.metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path: str = scope["path"]
        if scope["method"] == "POST" and path.endswith("/observations"):
            parts = path.split("/")
            if len(parts) >= 5 and parts[1] == "v1" and parts[2] == "models" and parts[3]:
                if len(parts) == 7 and parts[4] == "streams" and parts[5]:
                    await self._fast(scope, receive, send, started, STREAM_ROUTE, parts)
                    return
                if len(parts) == 5:
                    await self._fast(scope, receive, send, started, MANY_ROUTE, parts)
                    return
        await self._routed(scope, receive, send, started)

    async def _fast(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        started: float,
        route: str,
        parts: list[str],
    ) -> None:
        try:
            body = await self._read_body(receive)
            if body is None:
                return  # the client left before sending its body
            if route is STREAM_ROUTE:
                answer = await handlers.observe_stream(self.service, parts[3], parts[5], body)
            else:
                answer = await handlers.observe_many(self.service, parts[3], body)
        except Exception as exc:
            answer = handlers.error_answer(exc)
        status, data, extra = answer
        headers = [_JSON, (b"content-length", str(len(data)).encode())]
        if extra:
            headers.extend(extra)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})
        self.metrics.observe_http(route, "POST", status, time.perf_counter() - started)

    async def _read_body(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        total = 0
        limit = self.max_body
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _routed(self, scope: Scope, receive: Receive, send: Send, started: float) -> None:
        status = [500]
        limit = self.max_body

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            length = _content_length(scope)
            if length is not None and length > limit:
                await error_response(_too_large(limit))(scope, receive, send_wrapper)
                return
            received = [0]

            async def receive_limited() -> Message:
                # Chunked bodies carry no length: count as they arrive.
                message = await receive()
                if message["type"] == "http.request":
                    received[0] += len(message.get("body", b""))
                    if received[0] > limit:
                        raise _too_large(limit)
                return message

            await self.app(scope, receive_limited if length is None else receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics.observe_http(
                template, scope["method"], status[0], time.perf_counter() - started
            )


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"body: larger than the limit of {limit} bytes")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
