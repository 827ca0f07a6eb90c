"""HTTP routes (DESIGN §4). Handlers take the raw Request: bodies are parsed with
orjson and checked by hand (service/parsing.py), which is far cheaper than pydantic
models per request; every failure goes through responses.error_response."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from service.api.responses import error_body, error_response, json_response
from service.core import ForecastService
from service.errors import InvalidInput, NotReady, ServiceError
from service.parsing import check_reset, check_stream_id, load_json, parse_observations
from service.streams import ModelStreams

_STREAM_KEYS = frozenset(("observations", "reset"))
_ENTRY_KEYS = frozenset(("stream_id", "observations", "reset"))


def _check_keys(data: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise InvalidInput(
                f"{where}{key}: unknown field (allowed: {', '.join(sorted(allowed))})"
            )


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
            _check_keys(data, frozenset(("observations",)), "")
            obs = parse_observations(data.get("observations"), model.n_inputs, max_history)
            result = await model.forecast(obs)
            return json_response({"model": model.name, "version": model.version, **result})
        except Exception as exc:
            return error_response(exc)

    @router.post("/v1/models/{model}/streams/{stream_id}/observations")
    async def observe(request: Request) -> Response:
        try:
            params = request.path_params
            model = svc.model(params["model"])
            stream_id = check_stream_id(params["stream_id"], "stream_id")
            data = load_json(await request.body())
            _check_keys(data, _STREAM_KEYS, "")
            obs = parse_observations(data.get("observations"), model.n_inputs, max_history)
            reset = check_reset(data.get("reset"), "reset")
            result = await model.observe(stream_id, obs, reset)
            return json_response({"model": model.name, "version": model.version, **result})
        except Exception as exc:
            return error_response(exc)

    @router.post("/v1/models/{model}/observations")
    async def observe_many(request: Request) -> Response:
        try:
            model = svc.model(request.path_params["model"])
            data = load_json(await request.body())
            _check_keys(data, frozenset(("streams",)), "")
            entries = parse_entries(data.get("streams"), model, max_history)
            results = await model.observe_many(entries)
            out: list[dict[str, Any]] = []
            for entry, result in zip(entries, results, strict=True):
                if isinstance(result, ServiceError):
                    sid = entry_id(entry, result)
                    out.append({"stream_id": sid, "status": result.status, **error_body(result)})
                else:
                    out.append(result)
            return json_response({"model": model.name, "version": model.version, "results": out})
        except Exception as exc:
            return error_response(exc)

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


class EntryError(InvalidInput):
    """A bad entry of a multi-stream request; remembers its stream id if it had one."""

    def __init__(self, message: str, stream_id: str | None) -> None:
        super().__init__(message)
        self.stream_id = stream_id


def entry_id(entry: object, result: ServiceError) -> str | None:
    if isinstance(entry, tuple):
        return str(entry[0])
    return getattr(result, "stream_id", None)


def parse_entries(
    raw: object, model: ModelStreams, max_history: int
) -> list[tuple[str, list[Any], bool] | ServiceError]:
    """Validate every stream entry; a bad one becomes its own error, the rest go on."""
    if not isinstance(raw, list):
        raise InvalidInput("streams: must be a list of {stream_id, observations} objects")
    if not raw:
        raise InvalidInput("streams: must hold at least one stream")
    entries: list[tuple[str, list[Any], bool] | ServiceError] = []
    seen: dict[str, int] = {}
    for i, e in enumerate(raw):
        where = f"streams[{i}]"
        sid = e.get("stream_id") if isinstance(e, dict) else None
        sid = sid if isinstance(sid, str) else None
        try:
            if not isinstance(e, dict):
                raise InvalidInput(f"{where}: must be an object")
            _check_keys(e, _ENTRY_KEYS, f"{where}.")
            stream_id = check_stream_id(e.get("stream_id"), f"{where}.stream_id")
            if stream_id in seen:
                raise InvalidInput(
                    f"{where}.stream_id: {stream_id!r} already appears in "
                    f"streams[{seen[stream_id]}]; send all of a stream's observations in one entry"
                )
            seen[stream_id] = i
            obs = parse_observations(
                e.get("observations"), model.n_inputs, max_history, f"{where}.observations"
            )
            reset = check_reset(e.get("reset"), f"{where}.reset")
        except ServiceError as exc:
            err = EntryError(exc.message, sid)
            err.status, err.code = exc.status, exc.code
            entries.append(err)
            continue
        entries.append((stream_id, obs, reset))
    return entries
