"""Every operation of the service, once: parsed request in, answer body out.

The HTTP fast path, the FastAPI routes and the WebSocket call these and only translate
their transport (path parameters, body bytes, framing, status lines). So a rule, an
answer shape or an error is the same whichever way a request arrives.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.engine.model import ModelStreams
from service.engine.registry import Registry
from service.errors import NotReady, PayloadTooLarge, ServiceError
from service.protocol.answers import Body, error_entry
from service.protocol.entries import MANY_KEYS, parse_many_body
from service.protocol.requests import (
    STREAM_KEYS,
    check_stream_id,
    load_json,
    parse_forecast_body,
    parse_stream_body,
)

# A WebSocket message is a stream body or a multi-stream body, plus an "id" to echo.
WS_STREAM_KEYS = STREAM_KEYS | {"stream_id", "id"}
WS_MANY_KEYS = MANY_KEYS | {"id"}


class DataPlane:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    # -- health and models ---------------------------------------------------------------

    @staticmethod
    def health() -> Body:
        return {"status": "ok"}

    def ready(self) -> Body:
        if not self.registry.ready:
            raise NotReady("no model is loaded and serving")
        return {"status": "ready", "models": sorted(self.registry.models)}

    def list_models(self) -> Body:
        return {"models": self.registry.list_models()}

    def describe_model(self, model_name: str) -> Body:
        return self.registry.describe_model(model_name)

    def model(self, model_name: str) -> ModelStreams:
        return self.registry.model(model_name)

    # -- streams -------------------------------------------------------------------------

    async def observe_stream(self, model_name: str, stream_id: str, body: bytes) -> Body:
        model = self.registry.model(model_name)
        check_stream_id(stream_id, "stream_id")
        request = parse_stream_body(load_json(body), model.wire)
        result = await model.observe(stream_id, request.obs, request.reset)
        result["model"] = model.name
        result["version"] = model.version
        return result

    async def observe_many(self, model_name: str, body: bytes) -> Body:
        model = self.registry.model(model_name)
        request = parse_many_body(load_json(body), model.wire)
        results = await model.observe_many(request.entries, request.detail)
        out = model.answers.entries(request.entries, results, request.detail)
        return {"model": model.name, "version": model.version, "results": out}

    async def forecast(self, model_name: str, body: bytes) -> Body:
        model = self.registry.model(model_name)
        obs = parse_forecast_body(load_json(body), model.wire)
        result = await model.forecast(obs)
        return {"model": model.name, "version": model.version, **result}

    def status(self, model_name: str, stream_id: str) -> Body:
        model = self.registry.model(model_name)
        result = model.status(check_stream_id(stream_id, "stream_id"))
        return {"model": model.name, "version": model.version, **result}

    async def forget(self, model_name: str, stream_id: str) -> Body:
        model = self.registry.model(model_name)
        stream_id = check_stream_id(stream_id, "stream_id")
        await model.forget(stream_id)
        return {"model": model.name, "stream_id": stream_id, "deleted": True}

    # -- one WebSocket message -----------------------------------------------------------

    async def ws_message(
        self, model: ModelStreams, raw: bytes, max_bytes: int, emit: Callable[[Body], None]
    ) -> None:
        """Answer one message: ``emit`` gets one body per stream, each stream's in the
        order its observations were sent; every failure becomes an emitted error."""
        ident: Any = None
        sid: str | None = None
        try:
            if len(raw) > max_bytes:
                raise PayloadTooLarge(f"message: larger than the limit of {max_bytes} bytes")
            data = load_json(raw)
            ident = data.get("id")
            if isinstance(data.get("stream_id"), str):
                sid = data["stream_id"]
            if "streams" in data:
                request = parse_many_body(data, model.wire, WS_MANY_KEYS)
                entries, detail = request.entries, request.detail

                def answer(i: int, result: Body | ServiceError) -> None:
                    # Called while entry i's stream is still locked: per-stream order holds.
                    emit(
                        _with_id(model.answers.entry(_entry_id(entries[i]), result, detail), ident)
                    )

                await model.observe_many(entries, detail, on_result=answer)
                return
            request_one = parse_stream_body(data, model.wire, WS_STREAM_KEYS)
            stream_id = check_stream_id(data.get("stream_id"), "stream_id")
            result = await model.observe(stream_id, request_one.obs, request_one.reset)
            emit(_with_id(result, ident))
        except Exception as exc:
            body = error_entry(exc, sid)
            if body["stream_id"] is None:
                del body["stream_id"]
            emit(_with_id(body, ident))


def _entry_id(entry: object) -> str | None:
    if isinstance(entry, ServiceError):
        return entry.stream_id
    return str(entry[0]) if isinstance(entry, tuple) else None


def _with_id(body: Body, ident: Any) -> Body:
    if ident is not None:
        body["id"] = ident
    return body
