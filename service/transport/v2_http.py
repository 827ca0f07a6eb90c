"""The Open Inference Protocol (KServe v2) over HTTP, on the service's own port.

A pure ASGI layer in front of the app answers every path under /v2 from the route
table (routes.V2_ROUTES): no FastAPI routing or Request objects, because an infer is
as hot as a /v1 observation. It translates only: the body codec is
protocol/v2_rest.py, the meaning protocol/v2.py, the work the data plane's. Errors
take the protocol's shape through errors.render_v2.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from service.dataplane import DataPlane
from service.errors import MethodNotAllowed, NotFound, NotReady, render_v2
from service.metrics import Metrics
from service.protocol import v2_rest
from service.protocol.answers import Body, dumps
from service.protocol.v2 import server_metadata
from service.transport.guard import PARAMS_KEY, PRINCIPAL_KEY, ROUTE_KEY
from service.transport.limits import UNMATCHED, read_body
from service.transport.routes import V2_ROUTES, Route

HEADER_LENGTH = b"inference-header-content-length"
_JSON_TYPE = (b"content-type", b"application/json")
_BINARY_TYPE = (b"content-type", b"application/octet-stream")  # JSON header + binary data

Params = dict[str, str]
# An answer: (body, the JSON header's length when binary data follows it).
Handler = Callable[[Params, Scope, Receive], Awaitable[tuple[bytes, int | None]]]


class V2Http:
    def __init__(
        self, app: ASGIApp, dataplane: DataPlane, metrics: Metrics, max_body_bytes: int
    ) -> None:
        self.app = app
        self.dataplane = dataplane
        self.metrics = metrics
        self.max_body = max_body_bytes
        handlers: dict[str, Handler] = {
            "v2_server_metadata": self._server_metadata,
            "v2_live": self._live,
            "v2_ready": self._ready,
            "v2_model_metadata": self._model_metadata,
            "v2_model_version_metadata": self._model_metadata,
            "v2_model_ready": self._model_ready,
            "v2_model_version_ready": self._model_ready,
            "v2_infer": self._infer,
            "v2_version_infer": self._infer,
        }
        self.handlers = handlers
        self.routes: list[tuple[re.Pattern[str], Route]] = [
            (compile_path(r.path)[0], r) for r in V2_ROUTES
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v2"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        template = UNMATCHED
        header_length: bytes | None = None
        try:
            # The guard in front already matched path and method: no second regex pass.
            route: Route | None = scope.get(ROUTE_KEY)
            if route is not None and route.v2:
                params: Params = scope[PARAMS_KEY]
            else:
                route, params = self._match(scope["path"])
            template = route.path
            if method != route.method:  # the guard matches path and method together
                raise MethodNotAllowed(
                    f"method: {method} is not allowed on this path", allow=route.method
                )
            data, json_length = await self.handlers[route.name](params, scope, receive)
            status = 200
            if json_length is not None:
                header_length = b"%d" % json_length
        except _ClientGone:
            return  # nobody to answer
        except Exception as exc:
            status, error, headers = render_v2(exc)
            await _send_error(send, status, dumps(error), headers)
        else:
            await _send(send, data, header_length)
        self.metrics.observe_http(template, method, status, time.perf_counter() - started)

    def _match(self, path: str) -> tuple[Route, Params]:
        """The route of a path the guard did not match with its method (or when no
        guard is in front); raises 404 when there is none."""
        for pattern, route in self.routes:
            match = pattern.match(path)
            if match is not None:
                return route, match.groupdict()
        raise NotFound(f"path: no route for {path[:256]}")

    # -- handlers ----------------------------------------------------------------------

    async def _server_metadata(self, p: Params, scope: Scope, receive: Receive) -> _Answer:
        return dumps(server_metadata()), None

    async def _live(self, p: Params, scope: Scope, receive: Receive) -> _Answer:
        return dumps({"live": True}), None

    async def _ready(self, p: Params, scope: Scope, receive: Receive) -> _Answer:
        if not self.dataplane.registry.ready:
            raise NotReady("no model is loaded and serving")
        return dumps({"ready": True}), None

    async def _model_metadata(self, p: Params, scope: Scope, receive: Receive) -> _Answer:
        _, v2 = self.dataplane.v2_model(p["model"], p.get("version", ""))
        return dumps(v2.metadata()), None

    async def _model_ready(self, p: Params, scope: Scope, receive: Receive) -> _Answer:
        self.dataplane.v2_model(p["model"], p.get("version", ""))  # raises if not ready
        return dumps({"ready": True}), None

    async def _infer(self, p: Params, scope: Scope, receive: Receive) -> _Answer:
        model, v2 = self.dataplane.v2_model(p["model"], p.get("version", ""))
        body = await read_body(receive, self.max_body)
        if body is None:
            raise _ClientGone
        length = v2_rest.header_length(_header(scope, HEADER_LENGTH), len(body))
        request = v2_rest.decode(body, length, v2)
        answer: Body = await self.dataplane.infer(model, request, scope.get(PRINCIPAL_KEY))
        params, outputs = v2.answer(answer, [name for name, _ in request.outputs])
        return v2_rest.encode(v2, request, params, outputs)


_Answer = tuple[bytes, int | None]


class _ClientGone(Exception):
    """The client left before sending its whole body."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def _send(send: Send, data: bytes, header_length: bytes | None) -> None:
    """A 200: JSON, or (with the JSON header's length) JSON followed by binary data."""
    if header_length is None:
        raw = [_JSON_TYPE, (b"content-length", b"%d" % len(data))]
    else:
        raw = [_BINARY_TYPE, (b"content-length", b"%d" % len(data)), (HEADER_LENGTH, header_length)]
    await send({"type": "http.response.start", "status": 200, "headers": raw})
    await send({"type": "http.response.body", "body": data})


async def _send_error(send: Send, status: int, data: bytes, headers: dict[str, str]) -> None:
    raw = [_JSON_TYPE, (b"content-length", b"%d" % len(data))]
    raw.extend((k.lower().encode(), v.encode()) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
