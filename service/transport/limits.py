"""Pure ASGI layers around the routed app: the body-size limit and request metrics.

Pure ASGI rather than BaseHTTPMiddleware: a few microseconds, not a task per request.
The route label is the matched template (FastAPI puts the route in the scope), so the
metric's cardinality stays bounded whatever paths clients send.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge, render
from service.metrics import Metrics
from service.protocol.answers import dumps

UNMATCHED = "<unmatched>"  # one label for every unknown path, to bound cardinality
JSON_HEADER = (b"content-type", b"application/json")


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"body: larger than the limit of {limit} bytes")


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, refused past ``limit`` bytes; None if the client left first."""
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def send_json(
    send: Send, status: int, data: bytes, headers: dict[str, str] | None = None
) -> None:
    raw = [JSON_HEADER, (b"content-length", str(len(data)).encode())]
    if headers:
        raw.extend((k.lower().encode(), v.encode()) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


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
                code, body, headers = render(too_large(limit))
                await send_json(send_wrapper, code, dumps(body), headers)
                return
            received = [0]

            async def receive_limited() -> Message:
                # Chunked bodies carry no length: count as they arrive.
                message = await receive()
                if message["type"] == "http.request":
                    received[0] += len(message.get("body", b""))
                    if received[0] > limit:
                        raise too_large(limit)
                return message

            await self.app(scope, receive_limited if length is None else receive, send_wrapper)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics.observe_http(
                template, scope["method"], status[0], time.perf_counter() - started
            )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
