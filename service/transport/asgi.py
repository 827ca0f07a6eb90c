"""The fast path: the hot routes answered straight from ASGI messages.

Producers call the observation POSTs thousands of times a second; for them FastAPI's
routing, Request and Response objects cost more than the model step. The probes are
here too, so /healthz and /readyz answer at once under any load. This layer takes its
routes from the table (routes.HOT), calls the data plane and writes the answer itself;
every other request goes on to the routed app.

Before a POST's body is read, two cheap refusals keep overload from costing memory:
the body-bytes budget (limits.BodyBudget) and the model's admission (a saturated model
answers 503 at once instead of buffering and parsing what it would refuse anyway).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable

from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from service.dataplane import DataPlane
from service.engine.admission import Ticket
from service.errors import InvalidInput, MethodNotAllowed, RetryLater, render
from service.metrics import Metrics
from service.protocol import v2_rest
from service.protocol.access import Principal
from service.protocol.answers import Body, dumps
from service.transport.guard import PARAMS_KEY, PRINCIPAL_KEY, ROUTE_KEY, HostRule
from service.transport.limits import (
    BACKOFF_KEY,
    BodyBudget,
    content_length,
    read_body,
    send_json,
    too_large,
)
from service.transport.routes import HOT, Route, allowed_methods

BYTES_PER_OBS = 100  # a compact multi-stream entry of one observation is ~60-100 bytes
Call = Callable[[DataPlane, dict[str, str], bytes, Principal | None, Ticket], Awaitable[Body]]
Probe = Callable[[DataPlane], Body]

# The data plane call of each hot route, by the route's operation name.
_CALLS: dict[str, Call] = {
    "observe_stream": lambda dp, p, body, who, ticket: dp.observe_stream(
        p["model"], p["stream_id"], body, who, ticket
    ),
    "observe_many": lambda dp, p, body, who, ticket: dp.observe_many(p["model"], body, who, ticket),
    "observe_columns": lambda dp, p, body, who, ticket: dp.observe_columns(
        p["model"], body, who, ticket
    ),
}
_PROBES: dict[str, Probe] = {
    "health": lambda dp: dp.health(),
    "ready": lambda dp: dp.ready(),
}


def header_length(scope: Scope, body_length: int) -> int | None:
    """The JSON header's length of a binary columnar body (None: a JSON body)."""
    binary = False
    for name, value in scope["headers"]:
        if name == b"inference-header-content-length":
            return v2_rest.header_length(value, body_length)
        if name == b"content-type":
            binary = value.split(b";")[0].strip().lower() == b"application/octet-stream"
    if binary:  # else the binary body would be refused as "not valid JSON"
        raise InvalidInput(
            "Inference-Header-Content-Length: required with Content-Type "
            "application/octet-stream (the length of the body's JSON header)"
        )
    return None


async def send_binary(send: Send, data: bytes, head: int) -> None:
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(len(data)).encode()),
        (b"inference-header-content-length", str(head).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class Probes:
    """The probes for the protocol (server.GuardedHttp): path and Host in, the answer
    out (None: not a probe, or a Host the guard refuses), counted like any request."""

    def __init__(self, dataplane: DataPlane, metrics: Metrics, hosts: HostRule) -> None:
        self.dataplane = dataplane
        self.metrics = metrics
        self.hosts = hosts
        self.routes = {r.path.encode(): r for r in HOT if r.name in _PROBES}

    def __call__(self, path: bytes, host: bytes | None) -> tuple[int, bytes, dict[str, str]] | None:
        route = self.routes.get(path)
        if route is None or not self.hosts.allows(host):
            return None
        started = time.perf_counter()
        status, data, headers = probe_answer(self.dataplane, route.name)
        self.metrics.observe_http(route.path, "GET", status, time.perf_counter() - started)
        return status, data, headers or {}


def probe_answer(dp: DataPlane, name: str) -> tuple[int, bytes, dict[str, str] | None]:
    try:
        return 200, dumps(_PROBES[name](dp)), None
    except Exception as exc:
        status, error, headers = render(exc)
        return status, dumps(error), headers


class FastPath:
    def __init__(
        self,
        app: ASGIApp,
        dataplane: DataPlane,
        metrics: Metrics,
        max_body_bytes: int,
        budget: BodyBudget,
        backoff: float = 0.0,
    ) -> None:
        self.app = app
        self.backoff = backoff
        self.dataplane = dataplane
        self.metrics = metrics
        self.max_body = max_body_bytes
        self.budget = budget
        self.hot = frozenset(HOT)
        self.routes: list[tuple[re.Pattern[str], Route]] = [
            (compile_path(r.path)[0], r) for r in HOT
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = scope.get(ROUTE_KEY)  # matched (path and method) by the guard
            if route in self.hot:
                await self._answer(scope, receive, send, route, scope[PARAMS_KEY])
                return
            path: str = scope["path"]
            for pattern, route in self.routes:
                if pattern.match(path) is not None:
                    await self._refuse(scope, send, route)
                    return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, route: Route) -> None:
        started = time.perf_counter()
        method = scope["method"]
        exc = MethodNotAllowed(
            f"method: {method[:40]} is not allowed on this path",
            allow=allowed_methods(scope["path"]),
        )
        status, error, headers = render(exc)
        await send_json(send, status, dumps(error), headers)
        self.metrics.observe_http(route.path, method, status, time.perf_counter() - started)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, route: Route, params: dict[str, str]
    ) -> None:
        started = time.perf_counter()
        headers: dict[str, str] | None = None
        taken = 0
        ticket: Ticket | None = None
        admission = None
        try:
            if route.name in _PROBES:
                status, data, headers = probe_answer(self.dataplane, route.name)
            else:
                dp = self.dataplane
                length = content_length(scope)
                # 503 now if even a lower bound of its cost does not fit: an observation
                # takes more than BYTES_PER_OBS bytes of JSON.
                estimate = max(1, (length or 0) // BYTES_PER_OBS)
                admission = dp.model(params["model"]).admission
                admission.check(estimate)
                if length is not None and length > self.max_body:
                    raise too_large(self.max_body)
                wanted = self.max_body if length is None else length
                self.budget.take(wanted)
                taken = wanted
                body = await read_body(receive, self.max_body)
                if body is None:
                    return  # the client left before sending its body
                # Held from here, before the body is parsed: of a burst that passed the
                # check together, only what fits is parsed (the rest is 503 at once).
                # Not before the read, so a client trickling its body holds nothing.
                ticket = admission.reserve(estimate)
                split = header_length(scope, len(body)) if route.name == "observe_columns" else None
                if split is not None:  # the columnar form's binary layout
                    data, head = await dp.observe_columns_binary(
                        params["model"], body, split, scope[PRINCIPAL_KEY], ticket
                    )
                    await send_binary(send, data, head)
                    self.metrics.observe_http(
                        route.path, route.method, 200, time.perf_counter() - started
                    )
                    return
                call = _CALLS[route.name]
                answer = await call(dp, params, body, scope[PRINCIPAL_KEY], ticket)
                status, data = 200, dumps(answer)
        except Exception as exc:
            status, error, headers = render(exc)
            data = dumps(error)
            if isinstance(exc, RetryLater):
                scope[BACKOFF_KEY] = self.backoff
        finally:
            self.budget.give(taken)
            if ticket is not None and admission is not None:
                admission.release(ticket)
        await send_json(send, status, data, headers)
        self.metrics.observe_http(route.path, route.method, status, time.perf_counter() - started)
