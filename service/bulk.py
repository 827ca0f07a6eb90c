"""The bulk half of the data plane: many streams in one request, as rows (a list of
stream bodies) or as columns (parallel arrays, JSON or binary). Which streams a key may
touch, its new-stream reservations, the answer-size cap and the per-entry metrics are
applied here once for every bulk form, over HTTP and the WebSocket alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from service.engine import columns as engine_columns
from service.engine.admission import Ticket
from service.engine.model import ModelStreams
from service.engine.registry import Registry
from service.errors import PayloadTooLarge, ServiceError
from service.protocol.access import Principal, stream_error
from service.protocol.answers import Body
from service.protocol.columns import ColumnsRequest, parse_columns
from service.protocol.columns_answer import ColumnsResult, answer_columns, columns_answer_bytes
from service.protocol.columns_binary import decode_columns, encode_answer
from service.protocol.entries import Entry, ManyRequest, answer_bytes, parse_many_body
from service.protocol.requests import load_json


class BulkPlane:
    """Inherited by DataPlane (service/dataplane.py), whose single-stream operations and
    WebSocket messages sit beside these."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.max_answer = registry.settings.max_answer_bytes
        self.metrics = registry.metrics

    async def observe_many(
        self,
        model_name: str,
        body: bytes,
        who: Principal | None = None,
        ticket: Ticket | None = None,
    ) -> Body:
        model, data = self._opened(model_name, body, "streams", ticket)
        request = self._many(model, parse_many_body(data, model.wire))
        del data
        results = await self._run_many(model, request.entries, request.detail, who, ticket)
        out = model.answers.entries(request.entries, results, request.detail)
        return {"model": model.name, "version": model.version, "results": out}

    def _opened(
        self, model_name: str, body: bytes, rows_key: str, ticket: Ticket | None
    ) -> tuple[ModelStreams, dict[str, Any]]:
        """The model and the parsed JSON body, the request admitted by its number of rows
        (the list under ``rows_key``) before any row is checked."""
        model = self.registry.model(model_name)
        data = load_json(body)
        rows = data.get(rows_key)
        if isinstance(rows, list):
            self._admit(model, len(rows), ticket)
        return model, data

    def _many(self, model: ModelStreams, request: ManyRequest) -> ManyRequest:
        """Bound the answer before any work."""
        n_quantiles = len(model.spec.quantiles)
        size = answer_bytes(request.entries, request.detail, model.horizon, n_quantiles)
        if size > self.max_answer:
            raise PayloadTooLarge(
                f"streams: the answer could reach {size} bytes, more than the limit of "
                f'{self.max_answer}; send fewer streams or ask for "forecast": "none"',
                code="answer_too_large",
            )
        return request

    async def _run_many(
        self,
        model: ModelStreams,
        entries: list[Entry | ServiceError],
        detail: str,
        who: Principal | None,
        ticket: Ticket | None = None,
        on_result: Callable[[int, Body | ServiceError], None] | None = None,
    ) -> list[Body | ServiceError]:
        """Tenancy and quota reservations, the work, then settling the reservations
        (given back whole if the request fails as a whole)."""
        reserved = self._tenancy(model, entries, who)
        try:
            results = await model.observe_many(entries, detail, on_result, ticket)
        except BaseException:
            if who is not None:
                model.quotas.settle(who, (), reserved)
            raise
        self._after_many(model, entries, results, who, reserved)
        return results

    @staticmethod
    def _tenancy(
        model: ModelStreams, entries: list[Entry | ServiceError], who: Principal | None
    ) -> int:
        """Refuse (per entry, before any work) the streams this key may not touch, and
        reserve the new streams it may create (429 per entry past its quota or rate);
        returns how many were reserved, for ``settle``."""
        if who is None:
            return 0
        prefix = who.prefix
        n = len(prefix)
        # One pass without a call per entry: only the few suspects are worded.
        suspects = [
            i for i, e in enumerate(entries) if type(e) is tuple and (e[0][:n] != prefix or e[2])
        ]
        for i in suspects:
            sid, _, reset = entries[i]  # type: ignore[misc]
            err = stream_error(who, sid, reset)
            if err is not None:
                entries[i] = err.located(f"streams[{i}].{err.message}", sid)
        lookup, quotas = model.store.lookup, model.quotas
        reserved = 0
        for i, e in enumerate(entries):
            if type(e) is tuple and lookup(e[0]) is None:
                try:
                    quotas.admit_new(who)
                except ServiceError as exc:
                    entries[i] = exc.located(f"streams[{i}].{exc.message}", e[0])
                else:
                    reserved += 1
        return reserved

    def _after_many(
        self,
        model: ModelStreams,
        entries: list[Entry | ServiceError],
        results: list[Body | ServiceError],
        who: Principal | None,
        reserved: int,
    ) -> None:
        """Count the refused entries by reason; settle the key's new-stream reservations
        against the streams the request stepped."""
        rejected = self.metrics.entry_rejections
        failed = [i for i, r in enumerate(results) if isinstance(r, ServiceError)]
        for i in failed:
            rejected.labels(model.name, results[i].code).inc()  # type: ignore[union-attr]
        if who is not None:
            bad = set(failed)
            stepped = [e[0] for i, e in enumerate(entries) if type(e) is tuple and i not in bad]
            model.quotas.settle(who, stepped, reserved)

    async def observe_columns(
        self,
        model_name: str,
        body: bytes,
        who: Principal | None = None,
        ticket: Ticket | None = None,
    ) -> Body:
        """The columnar multi-stream request (protocol/columns.py, engine/columns.py)."""
        model, data = self._opened(model_name, body, "stream_ids", ticket)
        request = parse_columns(data, model.wire)
        del data
        result = await self._columns(model, request, who, ticket)
        return answer_columns(
            model.name, model.version, request.ids, result, request.detail,
            list(model.spec.quantiles), model.spec.median_index,
        )  # fmt: skip

    async def observe_columns_binary(
        self,
        model_name: str,
        body: bytes,
        header_length: int,
        who: Principal | None = None,
        ticket: Ticket | None = None,
    ) -> tuple[bytes, int]:
        """The same in the binary layout (protocol/columns_binary.py): (body, header length)."""
        model = self.registry.model(model_name)
        request = decode_columns(body, header_length, model.wire)
        self._admit(model, len(request), ticket)
        del body
        result = await self._columns(model, request, who, ticket)
        return encode_answer(
            model.name, model.version, request.ids, result, request.detail,
            list(model.spec.quantiles), model.spec.median_index,
        )  # fmt: skip

    @staticmethod
    def _admit(model: ModelStreams, cost: int, ticket: Ticket | None) -> None:
        """A bulk request's whole cost, refused (503) before its rows are checked."""
        if ticket is None:
            model.admission.check(cost)
        else:
            model.admission.grow(ticket, cost)

    async def _columns(
        self,
        model: ModelStreams,
        request: ColumnsRequest,
        who: Principal | None,
        ticket: Ticket | None = None,
    ) -> ColumnsResult:
        spec = model.spec
        size = columns_answer_bytes(
            len(request), request.detail, model.horizon, len(spec.quantiles)
        )
        if size > self.max_answer:
            raise PayloadTooLarge(
                f"stream_ids: the answer could reach {size} bytes, more than the limit of "
                f'{self.max_answer}; send fewer streams or ask for "forecast": "none"',
                code="answer_too_large",
            )
        new = engine_columns.admit(model, request, who)  # the key's reservations
        try:
            result = await engine_columns.observe_columns(model, request, ticket)
        except BaseException:
            if who is not None:
                model.quotas.settle(who, (), len(new))
            raise
        rejected = self.metrics.entry_rejections
        for exc in result.errors.values():
            rejected.labels(model.name, exc.code).inc()
        if who is not None:
            stepped = [request.ids[i] for i in new if i not in result.errors]
            model.quotas.settle(who, stepped, len(new))
        return result
