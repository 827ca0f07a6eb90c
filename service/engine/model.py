"""One served model version: its streams, orchestrated as lock -> plan -> run -> commit.

Planning (plan.py) decides and validates a request before any step; running
(step.py, lane.py) steps private copies through the batcher; only a request whose
every step succeeded is committed to the store, so a bad or failed request never
changes a stream and a retry of the last applied observation finds it intact.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from service.engine import many
from service.engine.accuracy import Accuracy
from service.engine.admission import Admission, Ticket
from service.engine.artifacts import LoadedModel
from service.engine.batcher import Batcher
from service.engine.calendar import Calendar
from service.engine.lane import Lane
from service.engine.locks import StreamLocks
from service.engine.plan import Planner
from service.engine.quotas import StreamQuotas
from service.engine.redis_link import Link
from service.engine.redis_store import RedisStateStore
from service.engine.rows import Rows
from service.engine.step import Job, StepSpec, run_jobs
from service.engine.store import NO_SEQ, MemoryStateStore, StateStore, StoreLayout
from service.errors import QueueFull, ServiceError, StreamNotFound, Unavailable
from service.metrics import ModelMetrics
from service.protocol.answers import Answers, Body
from service.protocol.entries import Entry
from service.protocol.requests import Obs, WireSpec
from service.settings import Settings

# How often one request reloads and re-plans a stream other replicas keep moving.
MAX_REPLANS = 8


class ModelStreams:
    """All the streams of one served model version."""

    def __init__(
        self,
        loaded: LoadedModel,
        settings: Settings,
        metrics: ModelMetrics,
        redis: Link | None = None,
    ) -> None:
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
        self.locks = StreamLocks(settings.max_waiting_per_stream)
        self.quotas = StreamQuotas(
            settings.key_max_streams,
            settings.key_new_streams_per_second,
            settings.eviction_grace_seconds,
        )
        busy, protected = self.locks.busy, self.quotas.protected

        def spared(sid: str) -> bool:
            # Eviction and expiry spare streams in flight and fresh streams within quota.
            return busy(sid) or protected(sid)

        layout = StoreLayout(spec.state_size, spec.horizon * len(spec.quantiles), len(spec.inputs))
        self.store: StateStore
        if redis is None:
            self.store = MemoryStateStore(layout, settings.max_streams, spared, self._on_evict)
        else:
            self.store = RedisStateStore(
                layout, settings.max_streams, spared, self._on_evict, redis,
                spec.name, spec.version, settings.stream_ttl_seconds,
            )  # fmt: skip
        self.accuracy = Accuracy(spec.horizon, settings.accuracy_sample_fraction, metrics)
        # Whether the stream in a slot is sampled for accuracy, so the multi-stream lane
        # can route sampled streams without hashing every id (one byte a stream).
        self.sampled = np.zeros(settings.max_streams, dtype=np.bool_)
        rows = Rows(spec.features, len(spec.inputs))
        step = StepSpec(rows, len(spec.inputs), spec.target_index, spec.median_index, self.accuracy)
        self.planner = Planner(
            step, self.store, calendar, self.answers, self.accuracy, metrics,
            settings.max_gap_steps, settings.max_steps_per_request,
        )  # fmt: skip
        self.max_steps = settings.max_steps_per_request
        self.admission = Admission(
            settings.admission_rows, metrics, settings.admission_seconds,
            settings.queue_deadline_seconds, settings.max_batch_rows,
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
        self.quotas.forget(stream_ids)
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
        self.quotas.forget(expired)
        for sid in expired:
            self.accuracy.forget(sid)
        if expired:
            self.metrics.expirations.inc(len(expired))
            self.metrics.live_streams.set(len(self.store))
        return len(expired)

    # -- commit ----------------------------------------------------------------------

    def _commit(self, job: Job) -> Body:
        slot, answer = self._stage(job)
        return self._account(job, slot, answer)

    def _stage(self, job: Job) -> tuple[int, Body]:
        """Write a finished job to the store (staged for persist on a durable backend)."""
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
        return slot, answer

    def _account(self, job: Job, slot: int, answer: Body) -> Body:
        """What follows a commit: sampling, live accuracy, metrics."""
        assert job.stream_id is not None
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

    async def observe(
        self, stream_id: str, obs: list[Obs], reset: bool, ticket: Ticket | None = None
    ) -> Body:
        # Whole or not at all, before any wait (``ticket``: reserved by the transport).
        with self.admission.hold(len(obs), ticket) as held:
            await self._turn(stream_id, held)
            return await self._observe_locked(stream_id, obs, reset)

    async def _turn(self, stream_id: str, held: Ticket) -> None:
        """Take the stream's lock; a request that had to wait past the admission
        deadline gives its turn up and is refused (503) before any work."""
        locks = self.locks
        turn = locks.enqueue(stream_id)
        if turn is None:
            return
        await locks.wait(stream_id, turn)
        if self.admission.late(held):
            locks.release(stream_id)
            raise self.admission.refuse_late()

    async def _observe_locked(self, stream_id: str, obs: list[Obs], reset: bool) -> Body:
        try:
            return await self._observe_held(stream_id, obs, reset)
        finally:
            self.locks.release(stream_id)

    async def _observe_held(self, stream_id: str, obs: list[Obs], reset: bool) -> Body:
        if self.store.durable:
            return await self._observe_durable(stream_id, obs, reset)
        plan = self.planner.plan(stream_id, obs, reset)
        if not isinstance(plan, Job):
            return plan
        await run_jobs(self.batcher, [plan])
        if plan.error is not None:
            raise plan.error  # nothing was committed: stream, ring and scores as they were
        return self._commit(plan)

    async def _observe_durable(self, stream_id: str, obs: list[Obs], reset: bool) -> Body:
        """The same on a shared backend: plan on the cached copy, and if another replica
        moved the stream meanwhile (a lost write, or an answer given without a write
        that the stored version contradicts), reload and plan again."""
        store = self.store
        for _ in range(MAX_REPLANS):
            if store.lookup(stream_id) is None:
                await self._load([stream_id])
            try:
                plan = self.planner.plan(stream_id, obs, reset)
            except ServiceError:
                if await store.stale([stream_id]):
                    store.drop([stream_id])
                    continue
                raise
            if not isinstance(plan, Job):
                if await store.stale([stream_id]):
                    store.drop([stream_id])
                    continue
                return plan
            await run_jobs(self.batcher, [plan])
            if plan.error is not None:
                raise plan.error
            slot, answer = self._stage(plan)
            if (await store.persist([slot]))[0]:
                return self._account(plan, slot, answer)
        raise Unavailable(
            f"stream_id: {stream_id!r} is being changed elsewhere at the same time; retry",
            code="stream_contended",
        )

    async def _load(self, stream_ids: list[str]) -> None:
        """Read streams this replica does not cache from the shared backend."""
        for sid, slot in await self.store.load(stream_ids):
            # A ring kept here from before the stream moved away would score its
            # forecasts against the wrong steps: scoring restarts with the record.
            self.accuracy.forget(sid)
            if self.accuracy.enabled:
                self.sampled[slot] = self.accuracy.sampled(sid)
        self.metrics.live_streams.set(len(self.store))

    async def observe_many(
        self,
        entries: list[Entry | ServiceError],
        detail: str = "full",
        on_result: Callable[[int, Body | ServiceError], None] | None = None,
        ticket: Ticket | None = None,
    ) -> list[Body | ServiceError]:
        """Many streams in one go (engine/many.py), admitted whole (or 503 before any
        work)."""
        cost = sum(len(e[1]) for e in entries if not isinstance(e, ServiceError))
        with self.admission.hold(cost, ticket):
            return await many.observe_many(self, entries, detail, on_result)

    async def forecast(self, obs: list[Obs]) -> Body:
        """Stateless: run a history from zero state; touches no stream."""
        job = self.planner.stateless(obs)
        with self.admission.hold(len(obs)):
            await run_jobs(self.batcher, [job])  # never committed, so never scored
        if job.error is not None:
            raise job.error
        assert job.last is not None and job.forecast is not None
        return self.answers.stateless(job.last.ts, job.filled, job.forecast)

    async def status(self, stream_id: str) -> Body:
        store = self.store
        if store.durable:  # read the record, not this replica's cache
            await self.locks.acquire(stream_id)
            try:
                if await store.stale([stream_id]):
                    store.drop([stream_id])
                if store.lookup(stream_id) is None:
                    await self._load([stream_id])
            finally:
                self.locks.release(stream_id)
        slot = store.lookup(stream_id)
        if slot is None:
            raise StreamNotFound(f"stream_id: no live stream {stream_id!r} in model {self.name!r}")
        return self.planner.stored(stream_id, slot, duplicate=False)

    async def forget(self, stream_id: str) -> None:
        await self.locks.acquire(stream_id)
        try:
            if not await self._drop(stream_id):
                raise StreamNotFound(
                    f"stream_id: no live stream {stream_id!r} in model {self.name!r}"
                )
        finally:
            self.locks.release(stream_id)

    async def observe_then_forget(self, stream_id: str, obs: list[Obs], reset: bool) -> Body:
        """Apply and answer, then forget the stream, in one turn of its lock (the end of
        a v2 sequence): no other request of the stream runs in between."""
        locks = self.locks
        with self.admission.hold(len(obs)) as held:  # whole or not at all, before any wait
            await self._turn(stream_id, held)
            try:
                answer = await self._observe_held(stream_id, obs, reset)
                await self._drop(stream_id)
                return answer
            finally:
                locks.release(stream_id)

    async def _drop(self, stream_id: str) -> bool:
        """Forget a stream whose lock the caller holds (in the shared backend too);
        False if it is not live."""
        if not await self.store.delete(stream_id):
            return False
        self.accuracy.forget(stream_id)
        self.quotas.forget((stream_id,))
        self.metrics.live_streams.set(len(self.store))
        return True
