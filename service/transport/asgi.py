"""The fast path: the hot POSTs answered straight from ASGI messages.

Producers call the observation POSTs thousands of times a second; for them FastAPI's
routing, Request and Response objects cost more than the model step. This layer
matches them from the route table (routes.HOT), calls the data plane and writes the
answer itself; every other request goes on to the routed app.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from service.dataplane import DataPlane
from service.errors import MethodNotAllowed, render
from service.metrics import Metrics
from service.protocol.answers import Body, dumps
from service.transport.limits import read_body, send_json
from service.transport.routes import HOT

Call = Callable[[DataPlane, dict[str, str], bytes], Awaitable[Body]]

# The data plane call of each hot route, by the route's operation name.
_CALLS: dict[str, Call] = {
    "observe_stream": lambda dp, p, body: dp.observe_stream(p["model"], p["stream_id"], body),
    "observe_many": lambda dp, p, body: dp.observe_many(p["model"], body),
}


class FastPath:
    def __init__(
        self, app: ASGIApp, dataplane: DataPlane, metrics: Metrics, max_body_bytes: int
    ) -> None:
        self.app = app
        self.dataplane = dataplane
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.routes: list[tuple[re.Pattern[str], str, Call]] = [
            (compile_path(r.path)[0], r.path, _CALLS[r.name]) for r in HOT
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            for pattern, template, call in self.routes:
                match = pattern.match(path)
                if match is not None:
                    if scope["method"] == "POST":
                        await self._answer(receive, send, template, call, match.groupdict())
                    else:
                        await self._refuse(scope, send, template)
                    return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, template: str) -> None:
        started = time.perf_counter()
        method = scope["method"]
        exc = MethodNotAllowed(f"method: {method} is not allowed on this path", allow="POST")
        status, error, headers = render(exc)
        await send_json(send, status, dumps(error), headers)
        self.metrics.observe_http(template, method, status, time.perf_counter() - started)

    async def _answer(
        self, receive: Receive, send: Send, template: str, call: Call, params: dict[str, str]
    ) -> None:
        started = time.perf_counter()
        headers: dict[str, str] | None = None
        try:
            body = await read_body(receive, self.max_body)
            if body is None:
                return  # the client left before sending its body
            status, data = 200, dumps(await call(self.dataplane, params, body))
        except Exception as exc:
            status, error, headers = render(exc)
            data = dumps(error)
        await send_json(send, status, data, headers)
        self.metrics.observe_http(template, "POST", status, time.perf_counter() - started)
