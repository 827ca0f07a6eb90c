"""Every operation of the service, once: parsed request in, answer body out.

The HTTP fast path, the FastAPI routes and the WebSocket call these and only translate
their transport (path parameters, body bytes, framing, status lines). So a rule, an
answer shape or an error is the same whichever way a request arrives: which streams a
key may touch, its stream quotas, the answer-size cap and the per-entry metrics too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.bulk import BulkPlane
from service.engine.admission import Ticket
from service.engine.model import ModelStreams
from service.engine.registry import Registry
from service.errors import ModelNotFound, NotReady, PayloadTooLarge, ServiceError
from service.protocol.access import Principal, check_sequence_end, check_stream
from service.protocol.answers import Body, error_entry
from service.protocol.columns import COLUMNS_KEYS, parse_columns
from service.protocol.columns_answer import answer_columns
from service.protocol.entries import MANY_KEYS, parse_many_body
from service.protocol.requests import (
    STREAM_KEYS,
    check_echo_id,
    check_stream_id,
    is_stream_id,
    load_json,
    parse_forecast_body,
    parse_stream_body,
)
from service.protocol.v2 import InferRequest, V2Model, bounded, v2_wording

# A WebSocket message is a stream body or a multi-stream body, plus an "id" to echo.
WS_STREAM_KEYS = STREAM_KEYS | {"stream_id", "id"}
WS_MANY_KEYS = MANY_KEYS | {"id"}
WS_COLUMNS_KEYS = COLUMNS_KEYS | {"id"}


class DataPlane(BulkPlane):
    def __init__(self, registry: Registry) -> None:
        super().__init__(registry)
        self._v2: dict[str, V2Model] = {}  # by model key, built on first use

    # -- health and models ---------------------------------------------------------------

    @staticmethod
    def health() -> Body:
        return {"status": "ok"}

    def ready(self) -> Body:
        if not self.registry.ready:
            raise NotReady("no model is loaded and serving")
        if not self.registry.backend_ok:
            raise NotReady("the state backend (Redis) is unavailable")
        return {"status": "ready", "models": sorted(self.registry.models)}

    def list_models(self) -> Body:
        return {"models": self.registry.list_models()}

    def describe_model(self, model_name: str) -> Body:
        return self.registry.describe_model(model_name)

    def model(self, model_name: str) -> ModelStreams:
        return self.registry.model(model_name)

    # -- streams -------------------------------------------------------------------------

    async def observe_stream(
        self,
        model_name: str,
        stream_id: str,
        body: bytes,
        who: Principal | None = None,
        ticket: Ticket | None = None,
    ) -> Body:
        model = self.registry.model(model_name)
        check_stream_id(stream_id, "stream_id")
        request = parse_stream_body(load_json(body), model.wire)
        result = await self._observe(model, stream_id, request.obs, request.reset, who, ticket)
        result["model"] = model.name
        result["version"] = model.version
        return result

    async def _observe(
        self,
        model: ModelStreams,
        sid: str,
        obs: list[Any],
        reset: bool,
        who: Principal | None,
        ticket: Ticket | None = None,
    ) -> Body:
        check_stream(who, sid, reset)
        if who is None:
            return await model.observe(sid, obs, reset, ticket)
        reserved = 0
        if model.store.lookup(sid) is None:
            model.quotas.admit_new(who)  # 429 past the key's quota or rate, before any work
            reserved = 1
        try:
            result = await model.observe(sid, obs, reset, ticket)
        except BaseException:
            model.quotas.settle(who, (), reserved)
            raise
        model.quotas.settle(who, (sid,), reserved)
        return result

    async def forecast(self, model_name: str, body: bytes, who: Principal | None = None) -> Body:
        model = self.registry.model(model_name)
        obs = parse_forecast_body(load_json(body), model.wire)
        result = await model.forecast(obs)
        return {"model": model.name, "version": model.version, **result}

    async def status(self, model_name: str, stream_id: str, who: Principal | None = None) -> Body:
        model = self.registry.model(model_name)
        check_stream(who, check_stream_id(stream_id, "stream_id"))
        result = await model.status(stream_id)
        return {"model": model.name, "version": model.version, **result}

    async def forget(self, model_name: str, stream_id: str, who: Principal | None = None) -> Body:
        model = self.registry.model(model_name)
        check_stream(who, check_stream_id(stream_id, "stream_id"))
        await model.forget(stream_id)
        return {"model": model.name, "stream_id": stream_id, "deleted": True}

    # -- the Open Inference Protocol (KServe v2) ----------------------------------------

    def v2_model(self, model_name: str, version: str = "") -> tuple[ModelStreams, V2Model]:
        """The served model of that name (and version, when one is asked for)."""
        model = self.registry.model(bounded(model_name, "model"))
        if version and bounded(version, "version") != model.version:
            raise ModelNotFound(
                f"version: {model.name!r} serves version {model.version}, not {version!r}"
            )
        v2 = self._v2.get(model.key)
        if v2 is None:
            spec = model.spec
            v2 = V2Model(
                spec.name, spec.version, len(spec.inputs), spec.horizon, spec.quantiles,
                model.wire,
            )  # fmt: skip
            self._v2[model.key] = v2
        return model, v2

    async def infer(
        self, model: ModelStreams, request: InferRequest, who: Principal | None = None
    ) -> Body:
        """A v2 inference: one step of the sequence's stream (sequence_start = reset,
        sequence_end = forget it after answering), or without a sequence id a stateless
        forecast over the request's history. The key's tenant, scopes and quotas apply
        as on /v1: reset and forget need admin, as they do there."""
        seq = request.sequence
        try:
            if seq.stream_id is None:
                return await model.forecast(request.obs)
            if seq.end:
                check_sequence_end(who, seq.stream_id, seq.start)
                return await model.observe_then_forget(seq.stream_id, request.obs, seq.start)
            return await self._observe(model, seq.stream_id, request.obs, seq.start, who)
        except ServiceError as exc:
            reworded = v2_wording(exc)
            if reworded is exc:
                raise
            raise reworded from None

    # -- one WebSocket message -----------------------------------------------------------

    async def ws_message(
        self,
        model: ModelStreams,
        raw: bytes,
        max_bytes: int,
        emit: Callable[[Body], None],
        who: Principal | None = None,
    ) -> None:
        """Answer one message: ``emit`` gets one body per stream, each stream's in the
        order its observations were sent; every failure becomes an emitted error."""
        ident: Any = None
        sid: str | None = None
        self.metrics.ws_messages.labels(model.name).inc()
        answers = self.metrics.ws_answers.labels(model.name)

        def send(body: Body) -> None:
            answers.inc()
            emit(_with_id(body, ident))

        try:
            if len(raw) > max_bytes:
                raise PayloadTooLarge(f"message: larger than the limit of {max_bytes} bytes")
            data = load_json(raw)
            del raw  # not held while the message waits for its streams
            ident = check_echo_id(data.get("id"))
            if isinstance(data.get("stream_id"), str) and is_stream_id(data["stream_id"]):
                sid = data["stream_id"]  # errors name it (only a valid id is echoed)
            if "stream_ids" in data:  # the columnar form: one answer message for all rows
                columns = parse_columns(data, model.wire, WS_COLUMNS_KEYS)
                del data
                result = await self._columns(model, columns, who)
                send(answer_columns(
                    model.name, model.version, columns.ids, result, columns.detail,
                    list(model.spec.quantiles), model.spec.median_index,
                ))  # fmt: skip
                return
            if "streams" in data:
                request = self._many(model, parse_many_body(data, model.wire, WS_MANY_KEYS))
                entries, detail = request.entries, request.detail
                del data

                def answer(i: int, result: Body | ServiceError) -> None:
                    # Called while entry i's stream is still locked: per-stream order holds.
                    send(model.answers.entry(_entry_id(entries[i]), result, detail))

                await self._run_many(model, entries, detail, who, on_result=answer)
                return
            request_one = parse_stream_body(data, model.wire, WS_STREAM_KEYS)
            sid = check_stream_id(data.get("stream_id"), "stream_id")
            del data
            send(await self._observe(model, sid, request_one.obs, request_one.reset, who))
        except Exception as exc:
            body = error_entry(exc, sid)
            if body["stream_id"] is None:
                del body["stream_id"]
            send(body)


def _entry_id(entry: object) -> str | None:
    if isinstance(entry, ServiceError):
        return entry.stream_id
    return str(entry[0]) if isinstance(entry, tuple) else None


def _with_id(body: Body, ident: Any) -> Body:
    if ident is not None:
        body["id"] = ident
    return body
