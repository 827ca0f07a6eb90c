"""The outermost ASGI layer: Host allowlist, API keys and scopes, Content-Type, Origin.

Every HTTP request and WebSocket handshake passes here before anything reads its body:
a foreign Host is 400 (DNS rebinding), a route that needs a key gets 401 without one
(403 without the route's scope), a JSON route refuses a body that does not declare JSON
with 415 (a cross-site form or text/plain post cannot), and a WebSocket handshake from
a foreign Origin is refused (a page cannot use a browser as a proxy). What passes
carries its route and principal in the scope for the layers inside.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import (
    Forbidden,
    MalformedRequest,
    ServiceError,
    Unauthorized,
    UnsupportedMediaType,
    render,
    render_v2,
)
from service.metrics import Metrics
from service.protocol.access import Principal
from service.protocol.answers import dumps
from service.transport.auth import KeyStore, authenticate
from service.transport.limits import BACKOFF_KEY, UNMATCHED, send_json
from service.transport.routes import ROUTES, WS_ROUTE, WS_SCOPE, Route

ROUTE_KEY = "forecast.route"  # scope keys set here for the layers inside
PARAMS_KEY = "forecast.params"
PRINCIPAL_KEY = "forecast.principal"
LOOPBACK = ("localhost", "127.0.0.1", "::1")
_WS = Route("GET", WS_ROUTE, "websocket", "", None, scope=WS_SCOPE)


class HostRule:
    """Which Host header values are ours: exact names, ``.domain`` suffixes, or ``*``."""

    def __init__(self, allowed: Sequence[str]) -> None:
        names = [h.lower().strip("[]") for h in allowed]
        self.any = "*" in names
        self.exact = frozenset(n for n in names if not n.startswith("."))
        self.suffixes = tuple(n for n in names if n.startswith("."))

    @classmethod
    def for_binding(cls, allowed: Sequence[str] | None, bind_host: str) -> HostRule:
        if allowed is not None:
            return cls(allowed)
        return cls(LOOPBACK if bind_host in LOOPBACK else ["*"])

    def allows(self, header: bytes | None) -> bool:
        if self.any:
            return True
        if header is None:
            return False
        host = header.decode("latin-1").lower()
        if host.startswith("["):  # [::1]:8000
            host = host[1 : host.find("]")]
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
        return host in self.exact or (host.endswith(self.suffixes) if self.suffixes else False)


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        keys: KeyStore | None,
        hosts: HostRule,
        origins: Sequence[str] = (),
        metrics_public: bool = False,
        backoff: float = 0.0,
    ) -> None:
        self.app = app
        self.backoff = backoff
        self.metrics = metrics
        self.keys = keys  # None: authentication disabled
        self.hosts = hosts
        self.origins = frozenset(o.encode() for o in origins)
        self.metrics_public = metrics_public
        # Hot routes first: they are most of the traffic.
        ordered = sorted(ROUTES, key=lambda r: not r.hot)
        self.routes: list[tuple[re.Pattern[str], Route]] = [
            (compile_path(r.path)[0], r) for r in ordered
        ]
        self.ws = compile_path(WS_ROUTE)[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        route: Route | None = None
        try:
            headers = dict(scope["headers"])  # the last of a repeated header wins
            if not self.hosts.allows(headers.get(b"host")):
                raise MalformedRequest("Host: not a name this service answers to", code="bad_host")
            route = self._match(scope)
            if kind == "websocket":
                origin = headers.get(b"origin")
                if origin is not None and origin not in self.origins:
                    raise Forbidden("Origin: cross-site WebSocket not allowed", code="bad_origin")
            if route is not None:
                scope[PRINCIPAL_KEY] = self._authenticate(route, headers)
                if route.content_types is not None:
                    _check_content_type(headers.get(b"content-type"), route.content_types)
        except ServiceError as exc:
            await self._refuse(scope, receive, send, exc, route, started)
            return
        await self.app(scope, receive, send)

    def _match(self, scope: Scope) -> Route | None:
        path: str = scope["path"]
        if scope["type"] == "websocket":
            match = self.ws.match(path)
            if match is None:
                return None
            scope[PARAMS_KEY] = match.groupdict()
            return _WS
        method = scope["method"]
        for pattern, route in self.routes:
            match = pattern.match(path)
            if match is not None and route.method == method:
                scope[ROUTE_KEY] = route
                scope[PARAMS_KEY] = match.groupdict()
                return route
        return None

    def _authenticate(self, route: Route, headers: dict[bytes, bytes]) -> Principal | None:
        if self.keys is None or route.scope is None:
            return None
        if route.scope == "metrics" and self.metrics_public:
            return None
        return authenticate(self.keys, route.scope, headers)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        exc: ServiceError,
        route: Route | None,
        started: float,
    ) -> None:
        if isinstance(exc, Unauthorized | Forbidden):
            self.metrics.auth_failures.labels(exc.code).inc()
            scope[BACKOFF_KEY] = self.backoff  # key guessing gets slow
        # The Open Inference Protocol's clients read its error shape ({"error": "<text>"}).
        v2 = scope["type"] == "http" and scope["path"].startswith("/v2")
        status, body, headers = (render_v2 if v2 else render)(exc)
        if scope["type"] == "websocket":
            await _deny_handshake(scope, receive, send, status, dumps(body), headers)
            return
        await send_json(send, status, dumps(body), headers)
        template = route.path if route is not None else UNMATCHED
        self.metrics.observe_http(template, scope["method"], status, time.perf_counter() - started)


def _check_content_type(value: bytes | None, allowed: tuple[str, ...]) -> None:
    media = (value or b"").split(b";", 1)[0].strip().lower().decode("latin-1")
    if media not in allowed:
        shown = repr(media[:40]) if media else "missing"
        raise UnsupportedMediaType(f"Content-Type: must be {' or '.join(allowed)}, got {shown}")


async def _deny_handshake(
    scope: Scope, receive: Receive, send: Send, status: int, body: bytes, headers: dict[str, str]
) -> None:
    message = await receive()  # websocket.connect
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close", "code": 1008})  # uvicorn answers 403
        return
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw.extend((k.lower().encode(), v.encode()) for k, v in headers.items())
    await send({"type": "websocket.http.response.start", "status": status, "headers": raw})
    await send({"type": "websocket.http.response.body", "body": body})
