"""The vectorised lane: many streams' next observation stepped as one block.

A multi-stream request's entries that are exactly one complete observation, one period
after what their stream applied, skip per-stream planning: their rows are built,
stepped and stored as arrays, and answered in bulk. It is the same semantics as the
general path (plan.py, step.py) for that one case; anything else (a retry, a conflict,
a gap, a sampled stream) is handed back to the general path, which words its answer.
tests/service/test_api_multi.py checks that both paths give the same states and answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from service.engine.accuracy import Accuracy
from service.engine.batcher import Item
from service.engine.calendar import Calendar
from service.engine.rows import Rows
from service.engine.store import NO_SEQ, StateStore
from service.errors import InferenceError, NonFiniteForecast, ServiceError
from service.metrics import ModelMetrics
from service.protocol.answers import Answers, Body
from service.protocol.requests import Obs

Simple = tuple[int, str, int, Obs]  # (entry index, stream id, slot, observation)
Generic = tuple[int, str, list[Obs], bool]  # (entry index, stream id, observations, reset)
Results = list[Body | ServiceError | None]

NON_FINITE = (
    "the model's forecast for this input is not finite (NaN or infinite): a value is "
    "out of the range the model can take; nothing was applied"
)


@dataclass
class Block:
    x: np.ndarray  # [n, F]
    slots: np.ndarray  # [n]
    entries: list[Simple]
    values: np.ndarray  # [n, inputs]
    seq: np.ndarray  # [n], NO_SEQ where none was given
    ts: np.ndarray  # [n]


class Lane:
    def __init__(
        self,
        store: StateStore,
        rows: Rows,
        calendar: Calendar,
        accuracy: Accuracy,
        sampled: np.ndarray,
        answers: Answers,
        metrics: ModelMetrics,
        target_index: int,
        median_index: int,
    ) -> None:
        self.store = store
        self.rows = rows
        self.calendar = calendar
        self.accuracy = accuracy
        self.sampled = sampled  # per slot: scored at every horizon step (general path)
        self.answers = answers
        self.metrics = metrics
        self.target_index = target_index
        self.median_index = median_index

    def split(self, simple: list[Simple], generic: list[Generic]) -> Block | None:
        """Keep the entries that are exactly the next period after what was applied;
        move the rest (retries, conflicts, gaps) to ``generic``."""
        n = len(simple)
        slots = np.fromiter((e[2] for e in simple), dtype=np.int64, count=n)
        ts = np.fromiter((e[3].ts for e in simple), dtype=np.float64, count=n)
        seq = np.fromiter(
            (NO_SEQ if e[3].seq is None else e[3].seq for e in simple), dtype=np.int64, count=n
        )
        ok = self.next_period(slots, ts, seq)
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
            len(simple), self.rows.n_inputs
        )
        return Block(self.rows.block(values, ts), slots, simple, values, seq, ts)

    def next_period(self, slots: np.ndarray, ts: np.ndarray, seq: np.ndarray) -> np.ndarray:
        """Which streams' observation is exactly the next period after what they applied
        (and may take the lane); the rest need the general path."""
        last_seq, last_ts = self.store.positions(slots)
        by_seq = (seq != NO_SEQ) & (last_seq != NO_SEQ)
        ok = (ts > last_ts) & (~by_seq | (seq > last_seq))
        if self.accuracy.enabled:
            ok &= ~self.sampled[slots]  # their horizon rings are kept on the general path
        ok &= self.calendar.steps_array(last_ts, ts) == 1
        ok &= ~self.calendar.weekend_array(ts)  # refused, with its reason, on the general path
        ok &= ts <= self.calendar.max_ts  # later ones get the exact check (and its error)
        return ok

    @staticmethod
    def items(block: Block, max_rows: int) -> list[Item]:
        x, slots = block.x, block.slots
        return [
            Item.block(x[a : a + max_rows], slots[a : a + max_rows])
            for a in range(0, len(slots), max_rows)
        ]

    def commit(self, block: Block, items: list[Item], results: Results, detail: str) -> None:
        """Store what the block's items computed and answer their entries; an item that
        failed, and a row the model answered NaN/inf for, fail only their own entries."""
        entries = block.entries
        for sel, err, forecast in self.apply(block, items):
            part = entries[sel] if isinstance(sel, slice) else [entries[k] for k in sel.tolist()]
            if err is not None:
                for i, *_ in part:
                    results[i] = err
                continue
            assert forecast is not None
            self.answers.block(
                [e[0] for e in part],
                [e[1] for e in part],
                [e[3].seq for e in part],
                block.ts[sel],
                forecast,
                detail,
                results,
            )

    def apply(
        self, block: Block, items: list[Item]
    ) -> Iterator[tuple[slice | np.ndarray, ServiceError | None, np.ndarray | None]]:
        """Store what the block's items computed, yielding (block rows, their error, or
        None and their forecasts [n, H, Q]); an item that failed, and a row the model
        answered NaN/inf for, fail only their own rows."""
        start = 0
        scored_err = 0.0
        scored_n = 0
        for item in items:
            stop = start + item.n
            if item.error is not None:
                err = item.error
                exc = err if isinstance(err, ServiceError) else InferenceError(str(err))
                yield slice(start, stop), exc, None
                start = stop
                continue
            sel: slice | np.ndarray = slice(start, stop)
            forecast, new_state = item.forecast, item.new_state
            assert forecast is not None and new_state is not None
            if item.bad is not None:
                yield np.flatnonzero(item.bad) + start, NonFiniteForecast(NON_FINITE), None
                good = np.flatnonzero(~item.bad)
                forecast, new_state = forecast[good], new_state[good]
                sel = good + start
            start = stop
            n = len(forecast)
            if not n:
                continue
            sl = block.slots[sel]
            values, ts = block.values[sel], block.ts[sel]
            # One step ahead on every stream: the stored forecast's first median vs truth.
            previous = self.store.forecast_rows(sl)[:, self.median_index]
            scored_err += float(np.abs(values[:, self.target_index] - previous).sum())
            scored_n += n
            self.store.put_rows(sl, new_state, forecast.reshape(n, -1), values, block.seq[sel], ts)
            yield sel, None, forecast
        if scored_n:
            self.metrics.observations.inc(scored_n)
            self.accuracy.score_one_step(scored_err, scored_n)
