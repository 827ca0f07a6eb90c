"""One served model version: its streams, orchestrated as lock -> plan -> run -> commit.

Planning (plan.py) decides and validates a request before any step; running
(step.py, lane.py) steps private copies through the batcher; only a request whose
every step succeeded is committed to the store, so a bad or failed request never
changes a stream and a retry of the last applied observation finds it intact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np

from service.engine.accuracy import Accuracy
from service.engine.artifacts import LoadedModel
from service.engine.batcher import Batcher, Item
from service.engine.calendar import Calendar
from service.engine.lane import Generic, Lane, Simple
from service.engine.locks import StreamLocks
from service.engine.plan import Planner
from service.engine.rows import Rows
from service.engine.step import Job, StepSpec, run_jobs
from service.engine.store import NO_SEQ, MemoryStateStore, StateStore, StoreLayout
from service.errors import InferenceError, QueueFull, ServiceError, StreamNotFound
from service.metrics import ModelMetrics
from service.protocol.answers import Answers, Body
from service.protocol.entries import Entry
from service.protocol.requests import Obs, WireSpec
from service.settings import Settings


class ModelStreams:
    """All the streams of one served model version."""

    def __init__(self, loaded: LoadedModel, settings: Settings, metrics: ModelMetrics) -> None:
        spec = loaded.spec
        self.spec = spec
        self.name = spec.name
        self.version = spec.version
        self.key = f"{spec.name}|{spec.version}"  # names its streams in a snapshot
        self.runtime = loaded.runtime
        self.runtime.inline_max = settings.inline_max_rows_steps
        self.metrics = metrics
        self.horizon = spec.horizon
        self.wire = WireSpec(len(spec.inputs), settings.max_history, spec.bounds)
        calendar = Calendar(spec.frequency, spec.frequency_seconds, spec.horizon)
        self.answers = Answers(calendar.forecast_ts_json, spec.quantiles, spec.median_index)
        self.locks = StreamLocks()
        self.store: StateStore = MemoryStateStore(
            StoreLayout(spec.state_size, spec.horizon * len(spec.quantiles), len(spec.inputs)),
            settings.max_streams,
            is_busy=self.locks.busy,
            on_evict=self._on_evict,
        )
        self.accuracy = Accuracy(spec.horizon, settings.accuracy_sample_fraction, metrics)
        # Whether the stream in a slot is sampled for accuracy, so the multi-stream lane
        # can route sampled streams without hashing every id (one byte a stream).
        self.sampled = np.zeros(settings.max_streams, dtype=np.bool_)
        rows = Rows(spec.features, len(spec.inputs))
        step = StepSpec(rows, len(spec.inputs), spec.target_index, spec.median_index, self.accuracy)
        self.planner = Planner(
            step, self.store, calendar, self.answers, self.accuracy, metrics,
            settings.max_gap_steps,
        )  # fmt: skip
        self.lane = Lane(
            self.store, rows, calendar, self.accuracy, self.sampled, self.answers, metrics,
            spec.target_index, spec.median_index,
        )  # fmt: skip
        self.batcher = Batcher(
            loaded.runtime,
            self.store.get_rows,
            spec.n_features,
            settings.max_batch_rows,
            settings.queue_rows,
            metrics,
        )

    # -- lifecycle -------------------------------------------------------------------

    def _on_evict(self, stream_ids: list[str]) -> None:
        for sid in stream_ids:
            self.accuracy.forget(sid)
        self.metrics.evictions.inc(len(stream_ids))
        self.metrics.live_streams.set(len(self.store))

    def after_restore(self) -> None:
        if self.accuracy.enabled:
            for sid, slot in self.store.streams():
                self.sampled[slot] = self.accuracy.sampled(sid)
        self.metrics.live_streams.set(len(self.store))

    def expire(self, ttl: float) -> int:
        expired = self.store.expire(ttl)
        for sid in expired:
            self.accuracy.forget(sid)
        if expired:
            self.metrics.expirations.inc(len(expired))
            self.metrics.live_streams.set(len(self.store))
        return len(expired)

    # -- commit ----------------------------------------------------------------------

    def _commit(self, job: Job) -> Body:
        assert job.last is not None and job.state is not None and job.forecast is not None
        assert job.stream_id is not None and job.inputs is not None
        last = job.last
        # The answer first: if building it fails, nothing has been committed.
        answer = self.answers.applied(job.stream_id, last.seq, last.ts, job.filled, job.forecast)
        try:
            slot = self.store.put(
                job.stream_id,
                job.state,
                job.forecast,
                job.inputs,  # type: ignore[arg-type]
                NO_SEQ if last.seq is None else last.seq,
                last.ts,
                job.n_obs,
                job.reset,
                job.streak,
            )
        except QueueFull:
            self.metrics.streams_full.inc()  # every slot held by a stream in flight
            raise
        if job.reset and self.accuracy.enabled:
            self.sampled[slot] = self.accuracy.sampled(job.stream_id)
        # Live accuracy changes only now that the stream has committed.
        if job.ring is not None:
            self.accuracy.install(job.stream_id, job.ring, job.scores)
        elif job.reset:
            self.accuracy.forget(job.stream_id)
        if job.err_n:
            self.accuracy.score_one_step(job.err_sum, job.err_n)
        m = self.metrics
        m.observations.inc(job.n_obs)
        if job.filled:
            m.gap_filled.inc(job.filled)
        if job.reset:  # possibly a new stream (and possibly an eviction to make room)
            m.live_streams.set(len(self.store))
        return answer

    # -- public operations ---------------------------------------------------------

    async def observe(self, stream_id: str, obs: list[Obs], reset: bool) -> Body:
        locks = self.locks
        await locks.wait(stream_id, locks.enqueue(stream_id))
        return await self._observe_locked(stream_id, obs, reset)

    async def _observe_locked(self, stream_id: str, obs: list[Obs], reset: bool) -> Body:
        try:
            return await self._observe_held(stream_id, obs, reset)
        finally:
            self.locks.release(stream_id)

    async def _observe_held(self, stream_id: str, obs: list[Obs], reset: bool) -> Body:
        plan = self.planner.plan(stream_id, obs, reset)
        if not isinstance(plan, Job):
            return plan
        await run_jobs(self.batcher, [plan])
        if plan.error is not None:
            raise plan.error  # nothing was committed: stream, ring and scores as they were
        return self._commit(plan)

    async def observe_many(
        self,
        entries: list[Entry | ServiceError],
        detail: str = "full",
        on_result: Callable[[int, Body | ServiceError], None] | None = None,
    ) -> list[Body | ServiceError]:
        """Many streams in one go.

        Free streams whose request is one complete next-period observation take the
        vectorised lane (one block item, arrays in and out, no per-stream Job). Every
        other free stream gets a Job, and all jobs share batcher rounds. Busy streams
        queue on their lock (joined now, so arrival order holds) and follow.

        ``on_result(i, result)``, if given, is called once per entry as soon as its
        result is final and BEFORE its stream's lock is released, so a caller that
        sends answers from it (the WebSocket) sends one stream's answers in order.
        """
        results: list[Body | ServiceError | None] = [None] * len(entries)
        jobs: list[tuple[int, Job]] = []
        simple: list[Simple] = []
        waiters: list[asyncio.Future[None]] = []
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
        try:
            generic: list[Generic] = []
            enqueue = locks.enqueue
            for i, entry in enumerate(entries):
                if isinstance(entry, ServiceError):
                    results[i] = entry
                    continue
                sid, obs, reset = entry
                turn = enqueue(sid)
                if turn is not None:
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
            block = self.lane.split(simple, generic) if simple else None
            for i, sid, obs, reset in generic:
                try:
                    plan = self.planner.plan(sid, obs, reset)
                except ServiceError as exc:
                    results[i] = exc
                    continue
                if isinstance(plan, Job):
                    jobs.append((i, plan))
                else:
                    results[i] = plan
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
                        results[i] = self._commit(job)
                    except ServiceError as exc:
                        results[i] = exc
            if block is not None and block_done is not None:
                await block_done
                self.lane.commit(block, block_items, results, detail)
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

    async def forecast(self, obs: list[Obs]) -> Body:
        """Stateless: run a history from zero state; touches no stream."""
        job = self.planner.stateless(obs)
        await run_jobs(self.batcher, [job])  # never committed, so never scored
        if job.error is not None:
            raise job.error
        assert job.last is not None and job.forecast is not None
        return self.answers.stateless(job.last.ts, job.filled, job.forecast)

    def status(self, stream_id: str) -> Body:
        slot = self.store.lookup(stream_id)
        if slot is None:
            raise StreamNotFound(f"stream_id: no live stream {stream_id!r} in model {self.name!r}")
        return self.planner.stored(stream_id, slot, duplicate=False)

    async def forget(self, stream_id: str) -> None:
        await self.locks.acquire(stream_id)
        try:
            if not self.store.forget(stream_id):
                raise StreamNotFound(
                    f"stream_id: no live stream {stream_id!r} in model {self.name!r}"
                )
            self.accuracy.forget(stream_id)
            self.metrics.live_streams.set(len(self.store))
        finally:
            self.locks.release(stream_id)
