"""Stream semantics of one model: exactly-once, order, gaps/missing values, commit.

A request for a stream becomes a ``Job``: a list of steps (runs of complete
observations, gap fills, observations with missing values) computed and validated up
front, then executed item by item through the batcher on a private copy of the state,
and committed to the store only when every step succeeded. So a bad or failed request
never changes a stream, and a retry of the last applied observation finds it intact.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from contract.timefeatures import time_feature, time_feature_array
from service.accuracy import Accuracy
from service.batcher import Batcher, Item
from service.engine.artifacts import LoadedModel
from service.engine.calendar import Calendar
from service.errors import (
    GapTooLarge,
    InferenceError,
    InvalidInput,
    NonFiniteForecast,
    OutOfOrder,
    QueueFull,
    ServiceError,
    StreamNotFound,
)
from service.job import Job, Step
from service.locks import StreamLocks
from service.metrics import ModelMetrics
from service.parsing import Obs
from service.protocol.timestamps import format_ts
from service.settings import Settings
from service.state import NO_SEQ, Layout, MemoryStateStore, StateStore

log = logging.getLogger(__name__)

Response = dict[str, Any]
Simple = tuple[int, str, int, Obs]  # (entry index, stream id, arena slot, observation)
# The vectorised lane's block: x [n, F], slots [n], its entries, value/seq/ts arrays.
Block = tuple[np.ndarray, np.ndarray, list[Simple], dict[str, np.ndarray]]


class ModelStreams:
    """All the streams of one served model version."""

    def __init__(self, loaded: LoadedModel, settings: Settings, metrics: ModelMetrics) -> None:
        spec = loaded.spec
        self.spec = spec
        self.name = spec.name
        self.version = spec.version
        self.runtime = loaded.runtime
        self.runtime.inline_max = settings.inline_max_rows_steps
        self.metrics = metrics
        self.calendar = Calendar(spec.frequency, spec.frequency_seconds, spec.horizon)
        self.horizon = spec.horizon
        self.n_q = len(spec.quantiles)
        self.quantiles = spec.quantiles
        self.quantiles_json = orjson.Fragment(orjson.dumps(spec.quantiles))
        self.median_index = spec.median_index
        self.n_inputs = len(spec.inputs)
        self.bounds = spec.bounds  # manifest min_exclusive per input, checked on parse
        self.target_index = spec.target_index
        self.max_gap = settings.max_gap_steps
        self.max_history = settings.max_history
        self._features: list[tuple[int, float, bool]] = [
            (f, 0.0, False) if isinstance(f, int) else (-1, f.period, f.fn == "sin")
            for f in spec.features
        ]
        self.locks = StreamLocks()
        self.store: StateStore = MemoryStateStore(
            Layout(spec.state_size, spec.horizon * self.n_q, self.n_inputs),
            settings.max_streams,
            is_busy=self.locks.busy,
            on_evict=self._on_evict,
        )
        self.accuracy = Accuracy(spec.horizon, settings.accuracy_sample_fraction, metrics)
        # Whether the stream in a slot is sampled for accuracy, so the multi-stream lane
        # can route sampled streams without hashing every id (one byte a stream).
        self.sampled = np.zeros(settings.max_streams, dtype=np.bool_)
        self.batcher = Batcher(
            loaded.runtime,
            self.store.get_rows,
            spec.n_features,
            spec.state_size,
            settings.max_batch_rows,
            settings.queue_rows,
            metrics,
        )

    _non_finite_message = (
        "the model's forecast for this input is not finite (NaN or infinite): a value is "
        "out of the range the model can take; nothing was applied"
    )

    # -- helpers -------------------------------------------------------------------

    def row(self, values: list[Any], ts: float) -> list[float]:
        out: list[float] = []
        for idx, period, is_sin in self._features:
            if idx >= 0:
                out.append(values[idx])
            else:
                out.append(time_feature(ts, period, "sin" if is_sin else "cos"))
        return out

    def _on_evict(self, stream_ids: list[str]) -> None:
        for sid in stream_ids:
            self.accuracy.forget(sid)
        self.metrics.evictions.inc(len(stream_ids))
        self.metrics.live_streams.set(len(self.store))

    def after_restore(self) -> None:
        store: Any = self.store
        if self.accuracy.enabled:
            for sid, slot in store.index.items():
                self.sampled[slot] = self.accuracy.sampled(sid)

    def expire(self, ttl: float) -> int:
        expired = self.store.expire(ttl)
        for sid in expired:
            self.accuracy.forget(sid)
        if expired:
            self.metrics.expirations.inc(len(expired))
            self.metrics.live_streams.set(len(self.store))
        return len(expired)

    def forecast_body(self, ts: float, forecast: np.ndarray) -> Response:
        return {
            "ts": self.calendar.forecast_ts_json(ts),
            "quantiles": self.quantiles_json,
            "values": forecast,
        }

    # -- planning ------------------------------------------------------------------

    def _steps(
        self, obs: list[Obs], prev_ts: float | None, offset: int, where: str, streak: int = 0
    ) -> tuple[list[Step], int, int]:
        """Plan the steps; returns (steps, filled periods, fill streak at the end).

        ``streak`` is the stream's run of filled periods before this request, so the
        gap limit counts consecutive filled periods across requests."""
        steps: list[Step] = []
        run: list[Obs] = []
        filled = 0
        stored = prev_ts is not None  # the first gap, if any, is from the stored last ts
        if not self.calendar.last_ts_ok(obs[-1].ts):  # ts increase: the last is the latest
            raise InvalidInput(
                f"{where}[{offset + len(obs) - 1}].ts: too late, its forecast horizon "
                f"({self.horizon} periods) would end after 9999-12-31T23:59:59Z"
            )
        for i, o in enumerate(obs, start=offset):
            if prev_ts is not None:
                gap = self.calendar.steps_between(prev_ts, o.ts) - 1
                if gap:
                    streak += gap
                    if streak > self.max_gap:
                        if stored and i == offset:
                            advice = (
                                'send "reset": true to restart the stream from this observation'
                            )
                        else:  # "reset" would not help: the gap is inside the request
                            advice = (
                                f"the gap is inside this request (between {where}[{i - 1}] "
                                "and this one), which a reset would not skip"
                            )
                        raise GapTooLarge(
                            f"{where}[{i}].ts: {streak} missing periods in a row before it, "
                            f"more than the limit of {self.max_gap}; {advice}"
                        )
                    if run:
                        steps.append(("rows", run))
                        run = []
                    steps.extend(
                        ("fill", self.calendar.step_ts(prev_ts, k)) for k in range(1, gap + 1)
                    )
                    filled += gap
            if o.missing:
                if prev_ts is None:
                    raise InvalidInput(
                        f"{where}[{i}].values: the first observation of a stream needs every "
                        "value (there is no forecast yet to fill from)"
                    )
                streak += 1
                if streak > self.max_gap:
                    raise GapTooLarge(
                        f"{where}[{i}].values: {streak} periods in a row are missing, more "
                        f"than the limit of {self.max_gap}"
                    )
                if run:
                    steps.append(("rows", run))
                    run = []
                steps.append(("miss", o))
                filled += 1
            else:
                streak = 0
                run.append(o)
            prev_ts = o.ts
        if run:
            steps.append(("rows", run))
        return steps, filled, streak

    def plan(self, stream_id: str, obs: list[Obs], reset: bool) -> Job | Response:
        """Decide what a request does to a stream (caller holds the stream's lock)."""
        store = self.store
        slot = store.lookup(stream_id)
        where = "observations"
        if slot is None:
            steps, filled, streak = self._steps(obs, None, 0, where)
            job = Job(self, stream_id, steps, -1, None, None, filled, len(obs), True)
            job.streak = streak
            job.ring = self.accuracy.private_ring(stream_id, fresh=True)
            return job
        last_seq, last_ts, _ = store.read(slot)
        final = obs[-1]
        by_seq = final.seq is not None and last_seq != NO_SEQ
        if (final.seq == last_seq) if by_seq else (final.ts == last_ts):
            # A retry of what was applied last: same answer, no step.
            self.metrics.duplicates.inc(len(obs))
            store.touch(slot)
            return self._status(stream_id, slot, duplicate=True)
        if reset:
            steps, filled, streak = self._steps(obs, None, 0, where)
            job = Job(self, stream_id, steps, -1, None, None, filled, len(obs), True)
            job.streak = streak
            job.ring = self.accuracy.private_ring(stream_id, fresh=True)
            return job
        k = 0
        for o in obs:
            old = o.seq <= last_seq if by_seq and o.seq is not None else o.ts <= last_ts
            if not old:
                break
            k += 1
        if k:
            prev = obs[k - 1]
            same = (prev.seq == last_seq) if by_seq else (prev.ts == last_ts)
            if k == len(obs) or not same:
                what = f"seq {prev.seq}" if by_seq else f"ts {format_ts(prev.ts)}"
                last = f"seq {last_seq}" if by_seq else f"ts {format_ts(last_ts)}"
                raise OutOfOrder(
                    f"{where}[{k - 1}]: {what} goes backwards; the stream already applied {last}"
                )
            self.metrics.duplicates.inc(k)
        first = obs[k]
        if first.ts <= last_ts:
            raise OutOfOrder(
                f"{where}[{k}].ts: {format_ts(first.ts)} is not after the stream's last "
                f"applied ts {format_ts(last_ts)}"
            )
        steps, filled, streak = self._steps(obs[k:], last_ts, k, where, store.fill_streak(slot))
        forecast = store.forecast(slot).reshape(self.horizon, self.n_q)
        inputs = store.inputs(slot).tolist()
        job = Job(self, stream_id, steps, slot, forecast, inputs, filled, len(obs) - k, False)
        job.streak = streak
        job.ring = self.accuracy.private_ring(stream_id, fresh=False)
        return job

    # -- execution -----------------------------------------------------------------

    async def _run(self, jobs: list[Job]) -> None:
        """Step all jobs together: one batcher round per step, one row per stream.
        Nothing is scored here: a job's accuracy counts only when it commits."""
        active = jobs
        while active:
            items = [job.next_item() for job in active]
            try:
                await self.batcher.submit(items)
            except ServiceError as exc:  # queue full: these jobs fail, nothing committed
                for job in active:
                    job.error = exc
                break
            still: list[Job] = []
            for job, item in zip(active, items, strict=True):
                if item.error is not None:
                    job.error = item.error
                elif job.on_result(item):
                    still.append(job)
            active = still

    def _commit(self, job: Job) -> Response:
        assert job.last is not None and job.state is not None and job.forecast is not None
        assert job.stream_id is not None and job.inputs is not None
        last = job.last
        # The answer first: if building it fails, nothing has been committed.
        answer: Response = {
            "stream_id": job.stream_id,
            "seq": last.seq,
            "ts": format_ts(last.ts),
            "filled": job.filled,
            "duplicate": False,
            "forecast": self.forecast_body(last.ts, job.forecast),
        }
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

    def _status(self, stream_id: str, slot: int, duplicate: bool) -> Response:
        seq, ts, count = self.store.read(slot)
        forecast = self.store.forecast(slot).reshape(self.horizon, self.n_q).copy()
        body: Response = {
            "stream_id": stream_id,
            "seq": None if seq == NO_SEQ else seq,
            "ts": format_ts(ts),
        }
        if duplicate:
            body["filled"] = 0
            body["duplicate"] = True
        else:
            body["count"] = count
        body["forecast"] = self.forecast_body(ts, forecast)
        return body

    # -- public operations ---------------------------------------------------------

    async def observe(self, stream_id: str, obs: list[Obs], reset: bool) -> Response:
        locks = self.locks
        await locks.wait(stream_id, locks.enqueue(stream_id))
        return await self._observe_locked(stream_id, obs, reset)

    async def _observe_locked(self, stream_id: str, obs: list[Obs], reset: bool) -> Response:
        try:
            return await self._observe_held(stream_id, obs, reset)
        finally:
            self.locks.release(stream_id)

    async def _observe_held(self, stream_id: str, obs: list[Obs], reset: bool) -> Response:
        plan = self.plan(stream_id, obs, reset)
        if not isinstance(plan, Job):
            return plan
        await self._run([plan])
        if plan.error is not None:
            raise plan.error  # nothing was committed: stream, ring and scores as they were
        return self._commit(plan)

    async def observe_many(
        self,
        entries: list[tuple[str, list[Obs], bool] | ServiceError],
        detail: str = "full",
        on_result: Callable[[int, Response | ServiceError], None] | None = None,
    ) -> list[Response | ServiceError]:
        """Many streams in one go.

        Free streams whose request is one complete next-period observation take the
        vectorised lane (one block item, arrays in and out, no per-stream Job). Every
        other free stream gets a Job, and all jobs share batcher rounds. Busy streams
        queue on their lock (joined now, so arrival order holds) and follow.

        ``on_result(i, result)``, if given, is called once per entry as soon as its
        result is final and BEFORE its stream's lock is released, so a caller that
        sends answers from it (the WebSocket) sends one stream's answers in order.
        """
        results: list[Response | ServiceError | None] = [None] * len(entries)
        jobs: list[tuple[int, Job]] = []
        simple: list[tuple[int, str, int, Obs]] = []
        waiters: list[asyncio.Future[None]] = []
        held: list[str] = []
        locks = self.locks
        index = getattr(self.store, "index", None)

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
            generic: list[tuple[int, str, list[Obs], bool]] = []
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
                if index is not None and not reset and len(obs) == 1 and not obs[0].missing:
                    slot = index.get(sid)
                    if slot is not None:
                        simple.append((i, sid, slot, obs[0]))
                        continue
                generic.append((i, sid, obs, reset))
            block = self._split_simple(simple, generic) if simple else None
            for i, sid, obs, reset in generic:
                try:
                    plan = self.plan(sid, obs, reset)
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
                x, slots = block[0], block[1]
                step = self.batcher.max_rows
                block_items = [
                    Item.block(x[a : a + step], slots[a : a + step])
                    for a in range(0, len(slots), step)
                ]
                try:
                    block_done = self.batcher.submit(block_items)
                except ServiceError as exc:
                    for i, *_ in block[2]:
                        results[i] = exc
                    block = None
            if jobs:
                await self._run([job for _, job in jobs])
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
                self._commit_block(block, block_items, results, detail)
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

    def _split_simple(
        self,
        simple: list[tuple[int, str, int, Obs]],
        generic: list[tuple[int, str, list[Obs], bool]],
    ) -> Block | None:
        """Keep the entries that are exactly the next period after what was applied;
        the rest (retries, conflicts, gaps) move to the generic path, which words
        their answer. Builds the block's x [n, F] from arrays."""
        store: Any = self.store
        n = len(simple)
        slots = np.fromiter((e[2] for e in simple), dtype=np.int64, count=n)
        ts = np.fromiter((e[3].ts for e in simple), dtype=np.float64, count=n)
        seq = np.fromiter(
            (NO_SEQ if e[3].seq is None else e[3].seq for e in simple), dtype=np.int64, count=n
        )
        last_seq = store.seq[slots]
        last_ts = store.ts[slots]
        by_seq = (seq != NO_SEQ) & (last_seq != NO_SEQ)
        ok = (ts > last_ts) & (~by_seq | (seq > last_seq))
        if self.accuracy.enabled:
            ok &= ~self.sampled[slots]  # their horizon rings are kept on the general path
        ok &= self.calendar.steps_array(last_ts, ts) == 1
        ok &= ts <= self.calendar.max_ts  # later ones get the exact check (and its error)
        if not ok.all():
            for k in np.flatnonzero(~ok).tolist():
                i, sid, _, o = simple[k]
                generic.append((i, sid, [o], False))
            keep = np.flatnonzero(ok)
            if not len(keep):
                return None  # every entry needs the general path
            simple = [simple[k] for k in keep.tolist()]
            slots, ts, seq = slots[keep], ts[keep], seq[keep]
        values = np.array([e[3].values for e in simple], dtype=np.float32).reshape(
            len(simple), self.n_inputs
        )
        x = np.empty((len(simple), len(self._features)), dtype=np.float32)
        for j, (idx, period, is_sin) in enumerate(self._features):
            if idx >= 0:
                x[:, j] = values[:, idx]
            else:
                x[:, j] = time_feature_array(ts, period, "sin" if is_sin else "cos")
        arrays: dict[str, np.ndarray] = {"values": values, "seq": seq, "ts": ts}
        return x, slots, simple, arrays

    def _commit_block(
        self,
        block: tuple[
            np.ndarray, np.ndarray, list[tuple[int, str, int, Obs]], dict[str, np.ndarray]
        ],
        items: list[Item],
        results: list[Response | ServiceError | None],
        detail: str,
    ) -> None:
        _, slots, simple, arrays = block
        store: Any = self.store
        values, seq, ts = arrays["values"], arrays["seq"], arrays["ts"]
        m = self.metrics
        start = 0
        scored_err = 0.0
        scored_n = 0
        for item in items:
            stop = start + item.n
            part = simple[start:stop]
            if item.error is not None:
                err = item.error
                exc = err if isinstance(err, ServiceError) else InferenceError(str(err))
                for i, *_ in part:
                    results[i] = exc
                start = stop
                continue
            sel: slice | np.ndarray = slice(start, stop)
            forecast, new_state = item.forecast, item.new_state
            assert forecast is not None and new_state is not None
            if item.bad is not None:  # rows the model answered NaN/inf for: their own error
                bad = np.flatnonzero(item.bad)
                for k in bad.tolist():
                    results[part[k][0]] = NonFiniteForecast(self._non_finite_message)
                good = np.flatnonzero(~item.bad)
                part = [part[k] for k in good.tolist()]
                forecast, new_state = forecast[good], new_state[good]
                sel = good + start
            start = stop
            n = len(part)
            if not n:
                continue
            sl = slots[sel]
            # One step ahead on every stream: the stored forecast's first median vs truth.
            previous = store.forecasts[sl, self.median_index]
            scored_err += float(np.abs(values[sel, self.target_index] - previous).sum())
            scored_n += n
            store.put_rows(sl, new_state, forecast.reshape(n, -1), values[sel], seq[sel], ts[sel])
            self._block_answers(part, ts[sel], forecast, results, detail)
        if scored_n:
            m.observations.inc(scored_n)
            self.accuracy.score_one_step(scored_err, scored_n)

    def _block_answers(
        self,
        part: list[Simple],
        ts: np.ndarray,
        forecast: np.ndarray,
        results: list[Response | ServiceError | None],
        detail: str,
    ) -> None:
        """The answers of one block item, built in bulk: each distinct timestamp is
        formatted once into an answer template that is copied per stream, and the
        forecast rows are taken as views in one call. (Serialising the whole [n, H, Q]
        array at once and splitting the text was measured slower: orjson then copies
        the fragments, and per-row numpy serialisation is already C speed.)"""
        if not part:
            return
        templates: dict[float, Response] = {
            t: {"stream_id": None, "seq": None, "ts": format_ts(t), "filled": 0, "duplicate": False}
            for t in np.unique(ts).tolist()
        }
        if detail == "none":
            for i, sid, _, o in part:
                body = templates[o.ts].copy()
                body["stream_id"] = sid
                body["seq"] = o.seq
                results[i] = body
            return
        forecast_ts = self.calendar.forecast_ts_json
        heads = {t: forecast_ts(t) for t in templates}
        if detail == "median":
            medians = list(np.ascontiguousarray(forecast[:, :, self.median_index]))
            for (i, sid, _, o), row in zip(part, medians, strict=True):
                body = templates[o.ts].copy()
                body["stream_id"] = sid
                body["seq"] = o.seq
                body["forecast"] = {"ts": heads[o.ts], "median": row}
                results[i] = body
            return
        quantiles = self.quantiles_json
        for (i, sid, _, o), row in zip(part, list(forecast), strict=True):
            body = templates[o.ts].copy()
            body["stream_id"] = sid
            body["seq"] = o.seq
            body["forecast"] = {"ts": heads[o.ts], "quantiles": quantiles, "values": row}
            results[i] = body

    async def forecast(self, obs: list[Obs]) -> Response:
        """Stateless: run a history from zero state; touches no stream."""
        steps, filled, _ = self._steps(obs, None, 0, "observations")
        job = Job(self, None, steps, -1, None, None, filled, len(obs), True)
        await self._run([job])  # never committed, so never scored
        if job.error is not None:
            raise job.error
        assert job.last is not None and job.forecast is not None
        return {
            "ts": format_ts(job.last.ts),
            "filled": filled,
            "forecast": self.forecast_body(job.last.ts, job.forecast),
        }

    def status(self, stream_id: str) -> Response:
        slot = self.store.lookup(stream_id)
        if slot is None:
            raise StreamNotFound(f"stream_id: no live stream {stream_id!r} in model {self.name!r}")
        return self._status(stream_id, slot, duplicate=False)

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
