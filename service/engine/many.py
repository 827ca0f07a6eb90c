"""Many streams in one request: the multi-stream body and the WebSocket's batches.

Free streams whose request is one complete next-period observation take the vectorised
lane (lane.py); every other free stream gets a Job, and all jobs share batcher rounds;
busy streams queue on their lock and follow. On a durable backend every stream the
request wrote is persisted in one call before any is answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from service.engine.batcher import Item
from service.engine.lane import Generic, Simple
from service.engine.step import Job, run_jobs
from service.errors import InferenceError, PayloadTooLarge, ServiceError
from service.protocol.answers import Body
from service.protocol.entries import Entry
from service.protocol.requests import Obs

if TYPE_CHECKING:
    from service.engine.model import ModelStreams

# A stream staged for a durable write: (entry index, slot, its job; None: the lane's).
Staged = tuple[int, int, Job | None]


async def observe_many(
    self: ModelStreams,
    entries: list[Entry | ServiceError],
    detail: str = "full",
    on_result: Callable[[int, Body | ServiceError], None] | None = None,
    extra_steps: int = 0,
) -> list[Body | ServiceError]:
    """Many streams in one go.

    Free streams whose request is one complete next-period observation take the
    vectorised lane (one block item, arrays in and out, no per-stream Job). Every
    other free stream gets a Job, and all jobs share batcher rounds. Busy streams
    queue on their lock (joined now, so arrival order holds) and follow.

    ``on_result(i, result)``, if given, is called once per entry as soon as its
    result is final and BEFORE its stream's lock is released, so a caller that
    sends answers from it (the WebSocket) sends one stream's answers in order.
    ``extra_steps``: steps the caller runs beside these (the columnar lane's rows),
    counted against the per-request cap.
    """
    results: list[Body | ServiceError | None] = [None] * len(entries)
    jobs: list[tuple[int, Job]] = []
    simple: list[Simple] = []
    waiters: list[asyncio.Future[None]] = []
    turns: list[asyncio.Future[None]] = []  # lock turns of the entries that wait
    held: list[str] = []
    locks = self.locks
    lookup = self.store.lookup

    async def later(i: int, sid: str, obs: list[Obs], reset: bool, turn: Any) -> None:
        try:
            await locks.wait(sid, turn)
        except ServiceError as exc:
            results[i] = exc
            if on_result is not None:
                on_result(i, exc)
            return
        try:
            results[i] = await self._observe_held(sid, obs, reset)
        except ServiceError as exc:
            results[i] = exc
        finally:
            result = results[i]
            if on_result is not None and result is not None:
                on_result(i, result)  # before the release: the next turn answers after
            locks.release(sid)

    queued: set[int] = set()  # entries answered by later()
    durable = self.store.durable
    try:
        generic: list[Generic] = []
        enqueue = locks.enqueue
        for i, entry in enumerate(entries):
            if isinstance(entry, ServiceError):
                results[i] = entry
                continue
            sid, obs, reset = entry
            try:
                turn = enqueue(sid)
            except ServiceError as exc:  # too many requests waiting on that stream
                results[i] = exc
                continue
            if turn is not None:
                turns.append(turn)
                waiters.append(asyncio.ensure_future(later(i, sid, obs, reset, turn)))
                queued.add(i)
                continue
            held.append(sid)
            if not reset and len(obs) == 1 and not obs[0].missing:
                slot = lookup(sid)
                if slot is not None:
                    simple.append((i, sid, slot, obs[0]))
                    continue
            generic.append((i, sid, obs, reset))
        if durable:
            # Streams this replica does not cache: one read for all (they plan as jobs).
            misses = [g[1] for g in generic if lookup(g[1]) is None]
            try:
                await self._load(misses)
            except ServiceError as exc:
                failed = set(misses)
                for g in generic:
                    if g[1] in failed:
                        results[g[0]] = exc
                generic = [g for g in generic if g[1] not in failed]
        block = self.lane.split(simple, generic) if simple else None
        unwritten: list[Generic] = []  # answered without a write (durable: checked)
        for g in generic:
            i, sid, obs, reset = g
            try:
                plan = self.planner.plan(sid, obs, reset, f"streams[{i}].observations")
            except ServiceError as exc:
                results[i] = exc
                unwritten.append(g)
                continue
            if isinstance(plan, Job):
                jobs.append((i, plan))
            else:
                results[i] = plan
                unwritten.append(g)
        steps = (
            extra_steps
            + len(block.entries if block is not None else ())
            + sum(job.n_obs + job.filled for _, job in jobs)
        )
        if steps > self.max_steps:  # refused whole, before any step
            for future in (*turns, *waiters):  # never ran: leave their queues
                future.cancel()
            raise PayloadTooLarge(
                f"streams: {steps} model steps (observations and filled periods), "
                f"more than the limit of {self.max_steps} per request",
                code="too_many_steps",
            )
        block_items: list[Item] = []
        block_done: asyncio.Future[None] | None = None
        if block is not None:
            block_items = self.lane.items(block, self.batcher.max_rows)
            try:
                block_done = self.batcher.submit(block_items)
            except ServiceError as exc:
                for i, *_ in block.entries:
                    results[i] = exc
                block = None
        staged: list[Staged] = []
        if jobs:
            await run_jobs(self.batcher, [job for _, job in jobs])
            for i, job in jobs:
                if job.error is not None:
                    err = job.error
                    results[i] = err if isinstance(err, ServiceError) else InferenceError(
                        str(err)
                    )  # fmt: skip
                    continue
                try:
                    if durable:
                        slot, results[i] = self._stage(job)
                        staged.append((i, slot, job))
                    else:
                        results[i] = self._commit(job)
                except ServiceError as exc:
                    results[i] = exc
        if block is not None and block_done is not None:
            await block_done
            self.lane.commit(block, block_items, results, detail)
            for i, _sid, slot, _obs in block.entries if durable else ():
                if not isinstance(results[i], ServiceError):
                    staged.append((i, slot, None))
        if durable:
            requests = {g[0]: g for g in generic}
            requests.update((e[0], (e[0], e[1], [e[3]], False)) for e in simple)
            await _settle(self, staged, unwritten, requests, results)
        if on_result is not None:
            # Every entry not queued behind a busy stream is final here, and its
            # stream's lock is still held: answer before anyone else can step it.
            for i, result in enumerate(results):
                if result is not None and i not in queued:
                    on_result(i, result)
    finally:
        # Release before waiting: a waiter may be queued on a stream we hold.
        locks.release_many(held)
    if waiters:
        await asyncio.gather(*waiters)
    return results  # type: ignore[return-value]


async def _settle(
    self: ModelStreams,
    staged: list[Staged],
    unwritten: list[Generic],
    requests: dict[int, Generic],
    results: list[Body | ServiceError | None],
) -> None:
    """Durable backend, multi-stream: persist every staged stream in one go, check
    the answers given without a write in one go, and run again (reload, re-plan)
    the few streams another replica moved meanwhile."""
    store = self.store
    try:
        ok, moved = await asyncio.gather(
            store.persist([slot for _, slot, _ in staged]),
            store.stale([g[1] for g in unwritten]),
        )
    except ServiceError as exc:
        for i, *_ in staged:
            results[i] = exc
        for g in unwritten:
            results[g[0]] = exc
        return
    redo: list[Generic] = []
    for (i, slot, job), written in zip(staged, ok, strict=True):
        if not written:
            redo.append(requests[i])
        elif job is not None:
            body = results[i]
            assert isinstance(body, dict)
            results[i] = self._account(job, slot, body)
    gone = set(moved)
    for g in unwritten:
        if g[1] in gone:
            store.drop([g[1]])
            redo.append(g)
    for i, sid, obs, reset in redo:
        try:
            results[i] = await self._observe_durable(sid, obs, reset)
        except ServiceError as exc:
            results[i] = exc
