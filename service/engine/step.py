"""One stream's work in one request, executed step by step on private state.

A Job is planned (plan.py validates everything up front), then fed to the batcher one
step at a time: a run of complete observations (one sequence call), a gap period, or
an observation with missing values. Filling follows docs/artifact.md: the target gets
the median of the one-step forecast, every other input its last observed value.
Nothing here touches the store; the model commits a finished job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from service.engine.accuracy import Accuracy, Ring
from service.engine.batcher import Batcher, Item
from service.engine.rows import Rows
from service.errors import ServiceError
from service.protocol.requests import Obs


@dataclass(frozen=True)
class StepSpec:
    """What stepping needs to know of its model."""

    rows: Rows
    n_inputs: int
    target_index: int
    median_index: int
    accuracy: Accuracy


# A step is ("rows", [complete observations]) run as one call, ("fill", ts) for a
# missing period, or ("miss", obs) for an observation with missing values.
Step = tuple[str, Any]


class Job:
    __slots__ = (
        "err_n", "err_sum", "error", "filled", "forecast", "inputs", "last", "n_obs", "pos",
        "read_slot", "reset", "ring", "scores", "spec", "state", "steps", "streak", "stream_id",
    )  # fmt: skip

    def __init__(
        self,
        spec: StepSpec,
        stream_id: str | None,
        steps: list[Step],
        read_slot: int,
        forecast: np.ndarray | None,
        inputs: list[float] | None,
        filled: int,
        n_obs: int,
        reset: bool,
    ) -> None:
        self.spec = spec
        self.stream_id = stream_id
        self.steps = steps
        self.pos = 0
        self.read_slot = read_slot  # arena row of the starting state; -1 = zeros
        self.state: np.ndarray | None = None  # private state after the steps so far
        self.forecast = forecast  # [H, Q] after the steps so far (None: new stream)
        self.inputs: list[Any] | None = inputs  # last raw inputs, for filling
        self.filled = filled
        self.n_obs = n_obs
        self.reset = reset
        self.last: Obs | None = None
        # Live accuracy, private until commit: the stream's ring (a copy), the horizon
        # errors it scored, and the one-step error sum and count.
        self.ring: Ring | None = None
        self.scores: list[tuple[int, float]] = []
        self.err_sum = 0.0
        self.err_n = 0
        self.error: Exception | None = None
        self.streak = 0  # filled periods in a row at the end of the steps (stored on commit)

    def next_item(self) -> Item:
        kind, payload = self.steps[self.pos]
        m = self.spec
        if kind == "rows":
            rows = [m.rows.row(o.values, o.ts) for o in payload]
        elif kind == "fill":
            rows = [m.rows.row(self._filled_values(None), payload)]
        else:
            rows = [m.rows.row(self._filled_values(payload.values), payload.ts)]
        return Item(rows, self.read_slot if self.state is None else -1, self.state)

    def _filled_values(self, values: list[float | None] | None) -> list[float | None]:
        # docs/artifact.md: target <- median of the one-step forecast, others <- last seen.
        assert self.forecast is not None and self.inputs is not None
        m = self.spec
        median = float(self.forecast[0, m.median_index])
        out: list[float | None] = []
        for j in range(m.n_inputs):
            v = None if values is None else values[j]
            if v is None:
                v = median if j == m.target_index else self.inputs[j]
            out.append(v)
        return out

    def on_result(self, item: Item) -> bool:
        """Take one step's result; returns whether steps remain."""
        kind, payload = self.steps[self.pos]
        m = self.spec
        ring = self.ring
        ti = m.target_index
        if kind == "rows":
            first = payload[0]
            if self.forecast is not None:
                self.err_sum += abs(first.values[ti] - float(self.forecast[0, m.median_index]))
                self.err_n += 1
            if ring is not None:
                for o in payload:
                    ring.step += 1
                    m.accuracy.score_ring(ring, o.values[ti], self.scores)
            self.last = payload[-1]
            self.inputs = payload[-1].values
        elif kind == "fill":
            if ring is not None:
                ring.step += 1
            self.inputs = self._filled_values(None)
        else:
            truth = payload.values[ti]
            if truth is not None and self.forecast is not None:
                self.err_sum += abs(truth - float(self.forecast[0, m.median_index]))
                self.err_n += 1
            if ring is not None:
                ring.step += 1
                if truth is not None:
                    m.accuracy.score_ring(ring, truth, self.scores)
            self.inputs = self._filled_values(payload.values)
            self.last = payload
        self.state = item.new_state
        self.forecast = item.forecast
        if ring is not None:
            assert self.forecast is not None
            m.accuracy.record(ring, self.forecast[:, m.median_index])
        self.pos += 1
        return self.pos < len(self.steps)


async def run_jobs(batcher: Batcher, jobs: list[Job]) -> None:
    """Step all jobs together: one batcher round per step, one row per stream.
    Nothing is scored here: a job's accuracy counts only when it commits."""
    active = jobs
    while active:
        items = [job.next_item() for job in active]
        try:
            await batcher.submit(items)
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
