"""Pure ASGI middleware: body-size limit and request metrics.

Pure ASGI rather than BaseHTTPMiddleware: it adds a few microseconds, not a task per
request, and sees the matched route template (FastAPI puts it in scope["route"]).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.responses import error_response
from service.errors import PayloadTooLarge
from service.metrics import Metrics

UNMATCHED = "<unmatched>"  # one label for every unknown path, to bound cardinality


class LimitAndMeasure:
    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
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
