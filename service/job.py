"""One stream's work in one request: the steps, executed item by item on private state.

A Job is planned by streams.ModelStreams (which validates everything up front), then
fed to the batcher one step at a time: a run of complete observations (one sequence
call), a gap period, or an observation with missing values. Filling follows
docs/artifact.md: the target gets the median of the one-step forecast, every other
input its last observed value. Nothing here touches the store; the caller commits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from service.accuracy import Ring
from service.batcher import Item
from service.parsing import Obs

if TYPE_CHECKING:
    from service.streams import ModelStreams

# A step is ("rows", [complete observations]) run as one call, ("fill", ts) for a
# missing period, or ("miss", obs) for an observation with missing values.
Step = tuple[str, Any]


class Job:
    __slots__ = (
        "err_n", "err_sum", "error", "filled", "forecast", "inputs", "last", "model", "n_obs",
        "pos", "read_slot", "reset", "ring", "scores", "state", "steps", "streak", "stream_id",
    )  # fmt: skip

    def __init__(
        self,
        model: ModelStreams,
        stream_id: str | None,
        steps: list[Step],
        read_slot: int,
        forecast: np.ndarray | None,
        inputs: list[float] | None,
        filled: int,
        n_obs: int,
        reset: bool,
    ) -> None:
        self.model = model
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
        m = self.model
        if kind == "rows":
            rows = [m.row(o.values, o.ts) for o in payload]
        elif kind == "fill":
            rows = [m.row(self._filled_values(None), payload)]
        else:
            rows = [m.row(self._filled_values(payload.values), payload.ts)]
        return Item(rows, self.read_slot if self.state is None else -1, self.state)

    def _filled_values(self, values: list[float | None] | None) -> list[float | None]:
        # docs/artifact.md: target <- median of the one-step forecast, others <- last seen.
        assert self.forecast is not None and self.inputs is not None
        m = self.model
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
        m = self.model
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
