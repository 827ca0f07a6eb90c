"""Many streams' next observations from columns: arrays through the lane, no object per row.

A columnar request's rows that are one complete next-period observation of a stream
this replica holds, free of other work, take the vectorised lane straight from the
request's arrays: no observation object, no per-stream plan, stored and answered as
arrays. Every other row (a new stream, a gap, a missing value, a retry, a row behind
another request on its stream) gets an observation object and goes through the general
multi-stream path (many.py), which plans and words it exactly as in the row form; both
share one batcher round. Nothing is committed for a failed row, and the whole request
is refused before any step when it exceeds the step cap.
"""

from __future__ import annotations

from itertools import repeat
from typing import TYPE_CHECKING

import numpy as np

from service.engine import many
from service.engine.admission import Ticket
from service.engine.batcher import Item
from service.engine.lane import Block, Lane
from service.engine.store import NO_SEQ
from service.errors import PayloadTooLarge, ServiceError
from service.protocol import columns
from service.protocol.access import Principal, stream_error
from service.protocol.answers import Body
from service.protocol.columns import ColumnsRequest, columns_wording
from service.protocol.columns_answer import ColumnsResult
from service.protocol.entries import Entry
from service.protocol.requests import Obs
from service.protocol.timestamps import parse_ts

if TYPE_CHECKING:
    from service.engine.model import ModelStreams

assert columns.NO_SEQ == NO_SEQ  # the wire's "no seq" is the store's


def _slots(model: ModelStreams, ids: list[str]) -> np.ndarray:
    """The slot of every row's stream, -1 where this replica does not hold it."""
    found = np.array(list(map(model.store.lookup, ids)), dtype=np.float64)  # None -> NaN
    return np.where(np.isnan(found), -1, found).astype(np.int64)


def admit(model: ModelStreams, req: ColumnsRequest, who: Principal | None) -> list[int]:
    """The key's checks, per row before any work: its tenant prefix (one pass over the
    ids), then its quota and rate for the rows that would create a stream. Returns the
    rows that would create one (to be given to the key once applied)."""
    if who is None:
        return []
    ids, errors = req.ids, req.errors
    if who.prefix:
        owned = list(map(str.startswith, ids, repeat(who.prefix)))
        if not all(owned):
            for i in (i for i, ok in enumerate(owned) if not ok and i not in errors):
                err = stream_error(who, ids[i], False)
                assert err is not None
                errors[i] = err.located(f"stream_ids[{i}]: {err.message}", ids[i])
    new: list[int] = []
    for i in np.flatnonzero(_slots(model, ids) < 0).tolist():
        if i in errors:
            continue
        try:
            model.quotas.admit_new(who)  # reserved; the data plane settles it
        except ServiceError as exc:
            errors[i] = exc.located(f"stream_ids[{i}] ({ids[i]!r}): {exc.message}", ids[i])
            continue
        new.append(i)
    return new


async def observe_columns(
    model: ModelStreams, req: ColumnsRequest, ticket: Ticket | None = None
) -> ColumnsResult:
    """Apply a columnar request; admitted whole (or 503 before any work); ``ticket``: the
    transport's reservation, topped up to the request's cost."""
    n = len(req)
    out = ColumnsResult.empty(n, model.horizon, len(model.spec.quantiles), req.errors)
    alive = np.ones(n, dtype=np.bool_)
    alive[list(req.errors)] = False
    with model.admission.hold(int(alive.sum()), ticket):
        await _observe(model, req, alive, out)
    return out


async def _observe(
    model: ModelStreams, req: ColumnsRequest, alive: np.ndarray, out: ColumnsResult
) -> None:
    lane: Lane = model.lane
    ids = req.ids
    slots = _slots(model, ids)
    # The lane's rows: complete, held here, exactly the next period, and free now.
    rows = np.flatnonzero(alive & (slots >= 0) & ~req.missing)
    if len(rows):
        rows = rows[lane.next_period(slots[rows], req.ts[rows], req.seq[rows])]
    lane_ids = [ids[k] for k in rows.tolist()]
    free = model.locks.take_free(lane_ids)
    if not all(free):
        keep = np.array(free, dtype=np.bool_)
        rows = rows[keep]
        lane_ids = [sid for sid, ok in zip(lane_ids, free, strict=True) if ok]
    try:
        general = alive.copy()
        general[rows] = False
        others = np.flatnonzero(general).tolist()
        entries: list[Entry | ServiceError] = [_entry(req, k) for k in others]
        if len(rows) + len(others) > model.max_steps:  # refused whole, before any step
            raise PayloadTooLarge(
                f"stream_ids: {len(rows) + len(others)} model steps or more, more than the "
                f"limit of {model.max_steps} per request",
                code="too_many_steps",
            )
        block = items = done = None
        if len(rows):
            values, ts = req.values[rows], req.ts[rows]
            block = Block(lane.rows.block(values, ts), slots[rows], [], values, req.seq[rows], ts)
            items = Lane.items(block, model.batcher.max_rows)
            try:
                done = model.batcher.submit(items)
            except ServiceError as exc:
                for k in rows.tolist():
                    out.errors[k] = exc
                block = None
        if entries:  # the general path, in the same batcher rounds as the block
            results = await many.observe_many(model, entries, "full", extra_steps=len(rows))
            _fill(out, ids, others, results)
        if block is not None and items is not None and done is not None:
            await done
            await _commit(model, req, rows, block, items, out)
    finally:
        model.locks.release_many(lane_ids)


def _entry(req: ColumnsRequest, k: int) -> Entry:
    values: list[float | None] = req.values[k].tolist()
    missing = bool(req.missing[k])
    if missing:
        values = [None if v != v else v for v in values]
    seq = int(req.seq[k])
    ob = Obs(float(req.ts[k]), None if seq == NO_SEQ else seq, values, missing)
    return req.ids[k], [ob], False


async def _commit(
    model: ModelStreams,
    req: ColumnsRequest,
    rows: np.ndarray,
    block: Block,
    items: list[Item],
    out: ColumnsResult,
) -> None:
    """Store the block and write its rows' answers (on a durable backend: persisted
    first, and a row another replica moved meanwhile runs again on the general path)."""
    written: list[np.ndarray] = []  # positions in the block
    for sel, err, forecast in model.lane.apply(block, items):
        at = rows[sel]
        if err is not None:
            for k in at.tolist():
                out.errors[k] = err
            continue
        out.forecast[at] = forecast
        written.append(np.arange(len(rows))[sel])
    if not written:
        return
    done = np.concatenate(written)
    at = rows[done]
    out.seq[at] = req.seq[at]
    out.ts[at] = req.ts[at]
    if not model.store.durable:
        return
    try:
        ok = await model.store.persist(block.slots[done].tolist())
    except ServiceError as exc:
        for k in at.tolist():
            out.errors[k] = exc
        return
    for k, stored in zip(at.tolist(), ok, strict=True):
        if not stored:  # another replica moved it: reload and plan it as the row form does
            sid, obs, _ = _entry(req, k)
            try:
                _fill_one(out, k, await model._observe_durable(sid, obs, False))
            except ServiceError as exc:
                out.errors[k] = exc.located(columns_wording(exc.message, k, sid), sid)


def _fill(
    out: ColumnsResult, ids: list[str], rows: list[int], results: list[Body | ServiceError]
) -> None:
    """The general path's answers (bodies or errors) into the result's columns."""
    for k, result in zip(rows, results, strict=True):
        if isinstance(result, ServiceError):
            sid = ids[k]
            out.errors[k] = result.located(columns_wording(result.message, k, sid), sid)
        else:
            _fill_one(out, k, result)


def _fill_one(out: ColumnsResult, k: int, body: Body) -> None:
    seq = body["seq"]
    out.seq[k] = NO_SEQ if seq is None else seq
    out.ts[k] = parse_ts(body["ts"])
    out.filled[k] = body["filled"]
    out.duplicate[k] = body["duplicate"]
    out.forecast[k] = body["forecast"]["values"]
