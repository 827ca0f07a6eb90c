"""The FastAPI routes of the cold endpoints: each translates HTTP to a data plane call.

Routes only raise; the app's one exception handler renders every error. Paths come
from the route table, which also documents them (/openapi.json).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from service.dataplane import DataPlane
from service.errors import ServiceError, as_service_error
from service.protocol.answers import dumps
from service.transport.routes import ROUTES


def json_response(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status_code=status, media_type="application/json")


Endpoint = Callable[[Request], Awaitable[Response]]


def _guarded(endpoint: Endpoint) -> Endpoint:
    """Unexpected exceptions become a logged ServiceError here, so the app's handler
    renders them (Starlette would otherwise answer 500 itself and re-raise)."""

    async def call(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ServiceError:
            raise
        except Exception as exc:
            raise as_service_error(exc) from exc

    return call


def add_routes(app: FastAPI, dataplane: DataPlane, openapi_document: dict[str, Any]) -> None:
    registry = dataplane.registry

    async def health(request: Request) -> Response:
        return json_response(dataplane.health())

    async def ready(request: Request) -> Response:
        return json_response(dataplane.ready())

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def list_models(request: Request) -> Response:
        return json_response(dataplane.list_models())

    async def describe_model(request: Request) -> Response:
        return json_response(dataplane.describe_model(request.path_params["model"]))

    async def forecast(request: Request) -> Response:
        body = await request.body()
        return json_response(await dataplane.forecast(request.path_params["model"], body))

    async def status(request: Request) -> Response:
        p = request.path_params
        return json_response(dataplane.status(p["model"], p["stream_id"]))

    async def forget(request: Request) -> Response:
        p = request.path_params
        return json_response(await dataplane.forget(p["model"], p["stream_id"]))

    async def openapi(request: Request) -> Response:
        return json_response(openapi_document)

    endpoints: dict[str, Endpoint] = {
        "health": health,
        "ready": ready,
        "metrics": metrics,
        "list_models": list_models,
        "describe_model": describe_model,
        "forecast": forecast,
        "status": status,
        "forget": forget,
        "openapi": openapi,
    }
    for route in ROUTES:
        if not route.hot:
            app.add_api_route(
                route.path,
                _guarded(endpoints[route.name]),
                methods=[route.method],
                name=route.name,
                include_in_schema=False,  # /openapi.json is built from the table
            )
