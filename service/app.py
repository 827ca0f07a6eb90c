"""The app factory: everything is built from Settings, nothing lives at module level."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.dataplane import DataPlane
from service.engine.registry import Registry
from service.errors import InvalidInput, MethodNotAllowed, NotFound, ServiceError, render
from service.protocol.answers import dumps
from service.protocol.bodies import ECHO_CHARS
from service.settings import Settings
from service.transport.asgi import FastPath, Probes
from service.transport.auth import KeyStore
from service.transport.guard import LOOPBACK, Guard, HostRule
from service.transport.http import add_routes
from service.transport.limits import BodyBudget, LimitAndMeasure
from service.transport.openapi import build_openapi
from service.transport.routes import allowed_methods
from service.transport.v2_grpc import V2Grpc
from service.transport.v2_http import V2Http
from service.transport.ws import add_ws_route

log = logging.getLogger(__name__)


class ForecastApp(FastAPI):
    """FastAPI whose outermost ASGI layers are the guard (Host, keys, Content-Type), the
    fast path and LimitAndMeasure, wrapped
    around the whole Starlette stack rather than added inside it with ``add_middleware``:
    each Starlette/FastAPI middleware layer (ServerErrorMiddleware,
    ExceptionTelemetryMiddleware, the body limit) costs ~5% of a small request, and the
    hot POSTs need none of them."""

    front: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.front(scope, receive, send)

    async def routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The FastAPI app proper (its middleware stack, router, exception handlers)."""
        await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> FastAPI:
    registry = Registry(settings)
    dataplane = DataPlane(registry)
    # A keys file that does not parse is a start error (ValueError naming the line).
    keys = None if settings.auth_disabled else KeyStore(
        settings.api_keys_file, settings.keys_reload_seconds
    )  # fmt: skip
    budget = BodyBudget(settings.max_inflight_body_bytes)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _announce_auth(settings, keys)
        if keys is not None:
            # SIGHUP re-reads the keys file (only the main thread may handle signals).
            with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
                asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, keys.reload)
        await registry.start()
        # Everything built so far (modules, the app, the models) lives as long as the
        # process: keep it out of the cyclic GC, whose full pass over it stalled the event
        # loop for ~100 ms (80k objects), the probes' worst latency under load.
        gc.collect()
        gc.freeze()
        grpc_server = None
        try:
            if settings.grpc_port is not None:
                grpc = V2Grpc(dataplane, registry.metrics, settings.max_body_bytes, keys)
                grpc_server, app.state.grpc_port = grpc.server(settings.host, settings.grpc_port)
                await grpc_server.start()
                log.info("KServe v2 gRPC on %s:%d", settings.host, app.state.grpc_port)
            yield
        finally:
            if grpc_server is not None:
                await grpc_server.stop(grace=5)  # in-flight calls finish first
            await registry.stop()

    app = ForecastApp(
        title="LSTM forecasting service",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # ours is generated from the route table (transport/openapi.py)
    )
    app.state.service = registry
    app.state.grpc_port = None  # the bound port once the lifespan started gRPC
    add_routes(app, dataplane, build_openapi(app.title, app.version))
    add_ws_route(app, dataplane, settings.max_body_bytes, budget)

    async def any_error(request: Request, exc: Exception) -> Response:
        """The one handler: every error a route raises, or the router refuses."""
        if isinstance(exc, StarletteHTTPException):
            exc = _router_error(request, exc)
        elif isinstance(exc, RequestValidationError):
            exc = InvalidInput(str(exc.errors())[:500])
        status, body, headers = render(exc)
        return Response(dumps(body), status, headers, media_type="application/json")

    for kind in (StarletteHTTPException, RequestValidationError, ServiceError):
        app.add_exception_handler(kind, any_error)  # FastAPI's own would answer these first

    metrics, max_body = registry.metrics, settings.max_body_bytes
    limited = LimitAndMeasure(app.routed, metrics, max_body, budget)
    backoff = settings.refusal_backoff_seconds
    fast = FastPath(limited, dataplane, metrics, max_body, budget, backoff)
    v2 = V2Http(fast, dataplane, metrics, max_body)
    hosts = HostRule.for_binding(settings.allowed_hosts, settings.host)
    app.state.probe = Probes(dataplane, metrics, hosts)  # for the protocol (server.py)
    app.front = Guard(
        v2, metrics, keys, hosts, settings.cors_origins, settings.metrics_public, backoff
    )
    if settings.cors_origins:  # off by default: no CORS headers, preflights refused
        app.front = CORSMiddleware(
            app.front,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
        )
    return app


def _announce_auth(settings: Settings, keys: KeyStore | None) -> None:
    if keys is None:
        exposed = settings.host not in LOOPBACK
        log.warning(
            "!!! AUTHENTICATION IS DISABLED (FORECAST_AUTH_DISABLED=true): anyone who reaches "
            "%s:%s can read, write and delete every stream.%s",
            settings.host,
            settings.port,
            " THIS ADDRESS IS NOT LOOPBACK." if exposed else " Local development only.",
        )
    elif not keys.keys:
        log.error(
            "authentication is on but no API keys are configured (FORECAST_API_KEYS_FILE): "
            "every API request will be refused with 401"
        )


def _router_error(request: Request, exc: StarletteHTTPException) -> ServiceError:
    if exc.status_code == 404:
        return NotFound(f"path: no route for {request.url.path[:ECHO_CHARS]!r}")
    if exc.status_code == 405:
        return MethodNotAllowed(
            f"method: {request.method[:ECHO_CHARS]} is not allowed on this path",
            allow=allowed_methods(request.url.path),
        )
    return InvalidInput(f"request: {exc.detail}")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
