"""Pure ASGI layers around the routed app: the body-size limit, the budget of body
bytes held at once, and request metrics.

Pure ASGI rather than BaseHTTPMiddleware: a few microseconds, not a task per request.
The route label is the matched template (FastAPI puts the route in the scope), so the
metric's cardinality stays bounded whatever paths clients send.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge, Unavailable, render
from service.metrics import Metrics
from service.protocol.answers import dumps

UNMATCHED = "<unmatched>"  # one label for every unknown path, to bound cardinality
# Set in a request's scope by a layer that refused it for load, share or a bad key: the
# connection then reads nothing more for that many seconds (server.GuardedHttp), so a
# client that retries at once cannot turn refusals into the server's main work.
BACKOFF_KEY = "forecast.backoff"
JSON_HEADER = (b"content-type", b"application/json")


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"body: larger than the limit of {limit} bytes")


class BodyBudget:
    """Bytes of request bodies (and WebSocket messages) held at once, across requests.

    A request takes its declared length (the body limit when it declares none) before
    its body is read and gives it back when answered, so many large requests at once
    are refused with 503 up front instead of all being buffered."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def take(self, n: int) -> None:
        if self.held and self.held + n > self.limit:
            raise Unavailable(
                "the service holds as many request bodies as it may; retry shortly",
                code="busy",
            )
        self.held += n

    def give(self, n: int) -> None:
        self.held -= n


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
    def __init__(
        self, app: ASGIApp, metrics: Metrics, max_body_bytes: int, budget: BodyBudget
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.budget = budget

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

        taken = 0
        try:
            length = content_length(scope)
            if length is not None and length > limit:
                code, body, headers = render(too_large(limit))
                await send_json(send_wrapper, code, dumps(body), headers)
                return
            if scope["method"] in _BODY_METHODS:
                wanted = limit if length is None else length
                try:
                    self.budget.take(wanted)
                except Unavailable as exc:
                    code, body, headers = render(exc)
                    await send_json(send_wrapper, code, dumps(body), headers)
                    return
                taken = wanted
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
            self.budget.give(taken)
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            self.metrics.observe_http(
                template, scope["method"], status[0], time.perf_counter() - started
            )


_BODY_METHODS = frozenset(("POST", "PUT", "PATCH"))


def content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
