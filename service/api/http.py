"""HTTP routes (DESIGN §4). Handlers take the raw Request: bodies are parsed with
orjson and checked by hand (service/parsing.py), which is far cheaper than pydantic
models per request; every failure goes through responses.error_response."""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from service.api import handlers
from service.api.responses import error_response, json_response
from service.core import ForecastService
from service.errors import NotReady
from service.parsing import check_stream_id, load_json, parse_observations

STREAM_ROUTE = "/v1/models/{model}/streams/{stream_id}/observations"
MANY_ROUTE = "/v1/models/{model}/observations"


def build_router(svc: ForecastService) -> APIRouter:
    router = APIRouter()
    settings = svc.settings
    max_history = settings.max_history

    @router.get("/healthz")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @router.get("/readyz")
    async def readyz() -> Response:
        if not svc.ready:
            return error_response(NotReady("no model is loaded and serving"))
        return json_response({"status": "ready", "models": sorted(svc.models)})

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(svc.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @router.get("/v1/models")
    async def list_models() -> Response:
        return json_response({"models": svc.list_models()})

    @router.get("/v1/models/{model}")
    async def get_model(request: Request) -> Response:
        try:
            return json_response(svc.describe_model(request.path_params["model"]))
        except Exception as exc:
            return error_response(exc)

    @router.post("/v1/models/{model}/forecast")
    async def forecast(request: Request) -> Response:
        try:
            model = svc.model(request.path_params["model"])
            data = load_json(await request.body())
            handlers.check_keys(data, frozenset(("observations",)), "")
            obs = parse_observations(
                data.get("observations"), model.n_inputs, max_history, bounds=model.bounds
            )
            result = await model.forecast(obs)
            return json_response({"model": model.name, "version": model.version, **result})
        except Exception as exc:
            return error_response(exc)

    @router.post(STREAM_ROUTE)
    async def observe(request: Request) -> Response:
        try:
            params = request.path_params
            answer = await handlers.observe_stream(
                svc, params["model"], params["stream_id"], await request.body()
            )
        except Exception as exc:
            answer = handlers.error_answer(exc)
        return _raw(answer)

    @router.post(MANY_ROUTE)
    async def observe_many(request: Request) -> Response:
        try:
            answer = await handlers.observe_many(
                svc, request.path_params["model"], await request.body()
            )
        except Exception as exc:
            answer = handlers.error_answer(exc)
        return _raw(answer)

    @router.get("/v1/models/{model}/streams/{stream_id}")
    async def stream_status(request: Request) -> Response:
        try:
            params = request.path_params
            model = svc.model(params["model"])
            stream_id = check_stream_id(params["stream_id"], "stream_id")
            result = model.status(stream_id)
            return json_response({"model": model.name, "version": model.version, **result})
        except Exception as exc:
            return error_response(exc)

    @router.delete("/v1/models/{model}/streams/{stream_id}")
    async def forget(request: Request) -> Response:
        try:
            params = request.path_params
            model = svc.model(params["model"])
            stream_id = check_stream_id(params["stream_id"], "stream_id")
            await model.forget(stream_id)
            return json_response({"model": model.name, "stream_id": stream_id, "deleted": True})
        except Exception as exc:
            return error_response(exc)

    return router


def _raw(answer: handlers.Answer) -> Response:
    status, body, headers = answer
    response = Response(body, status_code=status, media_type="application/json")
    for key, value in headers:
        response.headers[key.decode()] = value.decode()
    return response
