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

from service.api.http import build_router
from service.api.middleware import LimitAndMeasure
from service.api.responses import error_response
from service.api.ws import build_ws_router
from service.core import ForecastService
from service.errors import InvalidInput, NotFound, ServiceError
from service.settings import Settings


class MethodNotAllowed(ServiceError):
    status = 405
    code = "method_not_allowed"


class ForecastApp(FastAPI):
    """FastAPI whose outermost ASGI layer is LimitAndMeasure (the body limit, request
    metrics and the observation fast path), wrapped around the whole Starlette stack
    rather than added inside it with ``add_middleware``: each Starlette/FastAPI
    middleware layer (ServerErrorMiddleware, ExceptionTelemetryMiddleware, the body
    limit) costs ~5% of a small request, and the hot POSTs need none of them."""

    front: ASGIApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.front(scope, receive, send)

    async def routed(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The FastAPI app proper (its middleware stack, router, exception handlers)."""
        await super().__call__(scope, receive, send)


def create_app(settings: Settings) -> FastAPI:
    svc = ForecastService(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await svc.start()
        try:
            yield
        finally:
            await svc.stop()

    app = ForecastApp(
        title="LSTM forecasting service",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = svc
    app.include_router(build_router(svc))
    app.include_router(build_ws_router(svc))

    # Routes answer their own errors; these cover what the router itself refuses.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_response(NotFound(f"path: no route for {request.url.path}"))
        if exc.status_code == 405:
            return error_response(
                MethodNotAllowed(f"method: {request.method} is not allowed on this path")
            )
        err = ServiceError(str(exc.detail))
        err.status = exc.status_code
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error_response(InvalidInput(str(exc.errors())[:500]))

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> Response:
        return error_response(exc)

    app.front = LimitAndMeasure(app.routed, service=svc, max_body_bytes=settings.max_body_bytes)
    return app


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
