"""Micro-batcher of one model: many streams' rows into one ORT call.

Requests enqueue items (one stream's next T rows each) and await a group future. One
worker task takes whatever is queued — a lone request runs at once, no fixed sleep —
gathers state rows, runs ONE ORT call off the event loop, and hands each item its
forecast and new state. Whoever submitted commits them: the batcher never writes a
stream's stored state, so a failed multi-step request leaves no half-applied stream.

The per-stream lock upstream (streams.py) ensures a stream has at most one item in
flight, hence never two rows of one stream in one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

import numpy as np

from service.engine.runtime import Runtime
from service.errors import (
    InferenceError,
    NonFiniteForecast,
    QueueFull,
    ServiceError,
    Unavailable,
)
from service.metrics import ModelMetrics

log = logging.getLogger(__name__)


class Group:
    """Completion of all the items one request submitted at once.

    The future resolves once every item has a result or its own error, so a request
    never moves on while one of its rows is still queued.
    """

    __slots__ = ("future", "pending")

    def __init__(self, future: asyncio.Future[None], pending: int) -> None:
        self.future = future
        self.pending = pending

    def done_one(self) -> None:
        self.pending -= 1
        if self.pending == 0 and not self.future.done():
            self.future.set_result(None)


class Item:
    """One stream's next rows, or a block of many streams' next row.

    A single item has ``rows`` (T rows of F floats); ``state`` None means read arena
    ``slot`` (zeros if -1). A block (``Item.block``) has ``x`` [n, F] and arena
    ``slots`` [n] for n streams stepping once each — the vectorised multi-stream lane.
    Results: ``forecast``/``new_state`` are one stream's arrays, or [n, ...] for a block.
    """

    __slots__ = (
        "bad", "cost", "error", "forecast", "group", "n", "new_state", "offset", "rows",
        "slot", "slots", "state", "x",
    )  # fmt: skip

    def __init__(self, rows: list[list[float]], slot: int, state: np.ndarray | None) -> None:
        self.rows: list[list[float]] | None = rows
        self.slot = slot
        self.state = state
        self.x: np.ndarray | None = None
        self.slots: np.ndarray | None = None
        self.n = 1
        # What it weighs in the queue bound: rows x time steps (T for a history).
        self.cost = len(rows)
        self.offset = 0
        self.group: Group | None = None
        self.forecast: np.ndarray | None = None
        self.new_state: np.ndarray | None = None
        self.error: Exception | None = None
        # A block's rows whose forecast or new state is not finite (None: all finite).
        self.bad: np.ndarray | None = None

    @classmethod
    def block(cls, x: np.ndarray, slots: np.ndarray) -> Item:
        item = cls([], -1, None)
        item.rows = None
        item.x = x
        item.slots = slots
        item.n = item.cost = len(slots)
        return item

    def fail(self, exc: Exception) -> None:
        self.error = exc
        if self.group is not None:
            self.group.done_one()


class Batcher:
    def __init__(
        self,
        runtime: Runtime,
        get_rows: Callable[[np.ndarray], np.ndarray],
        n_features: int,
        max_rows: int,
        queue_rows: int,
        metrics: ModelMetrics,
    ) -> None:
        self.runtime = runtime
        self._get_rows = get_rows
        self._n_features = n_features
        self.max_rows = max_rows
        self.queue_rows = queue_rows
        self._metrics = metrics
        self._queue: deque[Item] = deque()
        self._rows = 0  # rows x time steps queued (a block counts its streams, a history T)
        self._lone = 0  # lone rows at the front of the queue (submit puts them there)
        self._wakeup: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def stop(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        err = Unavailable("the service is shutting down", code="shutting_down")
        while self._queue:
            self._queue.popleft().fail(err)
        self._rows = self._lone = 0

    def submit(self, items: list[Item]) -> asyncio.Future[None]:
        """Queue items; the returned future completes when all have results."""
        if self._closed:
            raise Unavailable("the service is shutting down", code="shutting_down")
        rows = sum(it.cost for it in items)
        # A request larger than the whole bound (a long history) is still admitted into an
        # empty queue, or it could never run; the bound then holds one such request.
        if self._rows + rows > self.queue_rows and self._rows:
            self._metrics.queue_full.inc()
            raise QueueFull(
                f"the batch queue is full ({self.queue_rows} rows); retry shortly",
                retry_after=1.0,
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not items:
            future.set_result(None)  # nothing to wait for; a zero-count group never ends
            return future
        group = Group(future, len(items))
        for item in items:
            item.group = group
        if len(items) == 1 and items[0].x is None and items[0].cost == 1:
            # A lone row (one observation) goes after the other lone rows, before bulk
            # blocks: it joins the next ORT call whatever backlog a bulk producer left.
            self._queue.insert(self._lone, items[0])
            self._lone += 1
        else:
            self._queue.extend(items)
        self._rows += rows
        self._metrics.queue_depth.set(self._rows)
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)
        return future

    def _take(self) -> list[Item]:
        queue = self._queue
        first = queue.popleft()
        if first.rows is not None and len(first.rows) != 1:
            self._rows -= first.cost
            return [first]  # a history (T > 1) runs as one sequence call on its own
        batch = [first]
        rows = first.n
        limit = self.max_rows
        while queue:
            nxt = queue[0]
            if rows + nxt.n > limit or (nxt.rows is not None and len(nxt.rows) != 1):
                break
            batch.append(queue.popleft())
            rows += nxt.n
        self._rows -= rows
        self._lone -= min(self._lone, len(batch))  # the front items went first
        return batch

    def _gather(self, batch: list[Item]) -> tuple[np.ndarray, np.ndarray]:
        f = self._n_features
        first = batch[0]
        if len(batch) == 1 and first.rows is not None:
            x = np.array(first.rows, dtype=np.float32).reshape(1, len(first.rows), -1)
            if x.shape[2] != f:
                raise InferenceError(f"rows have {x.shape[2]} features, model wants {f}")
            state = self._single_states(batch)
            return x, state
        singles = [it for it in batch if it.rows is not None]
        xs: list[np.ndarray] = []
        states: list[np.ndarray] = []
        offset = 0
        if singles:
            xs.append(np.array([it.rows[0] for it in singles], dtype=np.float32))  # type: ignore[index]
            states.append(self._single_states(singles))
            for it in singles:
                it.offset = offset
                offset += 1
        for it in batch:
            if it.x is not None and it.slots is not None:
                xs.append(it.x)
                states.append(self._get_rows(it.slots))
                it.offset = offset
                offset += it.n
        x = xs[0] if len(xs) == 1 else np.concatenate(xs)
        if x.ndim != 2 or x.shape[1] != f:
            raise InferenceError(f"rows have shape {x.shape}, model wants F={f}")
        state = states[0] if len(states) == 1 else np.concatenate(states)
        return x.reshape(offset, 1, f), state

    def _single_states(self, items: list[Item]) -> np.ndarray:
        slots = np.fromiter(
            (it.slot if it.slot >= 0 and it.state is None else 0 for it in items),
            dtype=np.int64,
            count=len(items),
        )
        state = self._get_rows(slots)  # fancy indexing: already a fresh copy
        for i, it in enumerate(items):
            if it.state is not None:
                state[i] = it.state
            elif it.slot < 0:
                state[i] = 0.0
        return state

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup = loop.create_future()
                await self._wakeup
                self._wakeup = None
                continue
            # One loop turn (not a timed sleep): requests whose bytes already arrived
            # get to enqueue, so batches grow under load while a lone row still runs now.
            await asyncio.sleep(0)
            batch = self._take()
            self._metrics.queue_depth.set(self._rows)
            try:
                x, state = self._gather(batch)
                forecast, new_state, seconds = await self.runtime.run_async(x, state)
                if len(forecast) != len(x) or len(new_state) != len(x):
                    raise InferenceError(
                        f"the graph answered {len(forecast)} rows for a batch of {len(x)}"
                    )
            except asyncio.CancelledError:
                stopping = Unavailable("the service is shutting down", code="shutting_down")
                for it in batch:
                    it.fail(stopping)
                raise
            except Exception as exc:
                # Every waiter of this batch, and no one else, gets the error; the worker
                # itself lives on, or every later request would wait forever.
                log.exception("inference failed for a batch of %d rows", len(batch))
                err = exc if isinstance(exc, ServiceError) else InferenceError(
                    f"inference failed: {type(exc).__name__}: {exc}"
                )  # fmt: skip
                for it in batch:
                    it.fail(err)
                continue
            self._metrics.inference.observe(seconds)
            self._metrics.batch_rows.observe(len(forecast))
            n = len(forecast)
            # One pass over the outputs: a row that is NaN or infinite (an input the model
            # cannot take) fails its own stream, never steps it.
            finite = np.isfinite(forecast.reshape(n, -1)).all(axis=1)
            finite &= np.isfinite(new_state.reshape(n, -1)).all(axis=1)
            if not finite.all():
                self._mark_non_finite(batch, finite)
            for it in batch:
                if it.error is not None:
                    if it.group is not None:
                        it.group.done_one()
                    continue
                if it.x is None:
                    it.forecast = forecast[it.offset]
                    it.new_state = new_state[it.offset]
                else:
                    it.forecast = forecast[it.offset : it.offset + it.n]
                    it.new_state = new_state[it.offset : it.offset + it.n]
                if it.group is not None:
                    it.group.done_one()

    @staticmethod
    def _mark_non_finite(batch: list[Item], finite: np.ndarray) -> None:
        for it in batch:
            ok = finite[it.offset : it.offset + it.n]
            if ok.all():
                continue
            if it.x is None:
                it.error = NonFiniteForecast(
                    "the model's forecast for this input is not finite (NaN or infinite): "
                    "a value is out of the range the model can take; nothing was applied"
                )
            else:
                it.bad = ~ok
