"""The app factory: everything is built from Settings, nothing lives at module level."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.dataplane import DataPlane
from service.engine.registry import Registry
from service.errors import InvalidInput, MethodNotAllowed, NotFound, ServiceError, render
from service.protocol.answers import dumps
from service.settings import Settings
from service.transport.asgi import FastPath
from service.transport.http import add_routes
from service.transport.limits import LimitAndMeasure
from service.transport.openapi import build_openapi
from service.transport.ws import add_ws_route


class ForecastApp(FastAPI):
    """FastAPI whose outermost ASGI layers are the fast path and LimitAndMeasure, wrapped
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

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await registry.start()
        try:
            yield
        finally:
            await registry.stop()

    app = ForecastApp(
        title="LSTM forecasting service",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # ours is generated from the route table (transport/openapi.py)
    )
    app.state.service = registry
    add_routes(app, dataplane, build_openapi(app.title, app.version))
    add_ws_route(app, dataplane, settings.max_body_bytes)

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

    limited = LimitAndMeasure(app.routed, registry.metrics, settings.max_body_bytes)
    app.front = FastPath(limited, dataplane, registry.metrics, settings.max_body_bytes)
    return app


def _router_error(request: Request, exc: StarletteHTTPException) -> ServiceError:
    if exc.status_code == 404:
        return NotFound(f"path: no route for {request.url.path}")
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        return MethodNotAllowed(
            f"method: {request.method} is not allowed on this path", allow=allow
        )
    return InvalidInput(f"request: {exc.detail}")


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
