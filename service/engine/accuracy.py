"""Live accuracy: score forecasts once their truth arrives.

Every stream is scored one step ahead from the forecast the store keeps anyway. A
sampled fraction of streams (chosen by a hash of the id, so no per-stream flag is
stored) also keeps the medians of its last H forecasts in a ring, to score every
horizon step; memory for the rest stays zero.
"""

from __future__ import annotations

import zlib

import numpy as np

from service.metrics import ModelMetrics


class Ring:
    __slots__ = ("medians", "origins", "step")

    def __init__(self, horizon: int) -> None:
        self.medians = np.zeros((horizon, horizon), dtype=np.float32)
        self.origins = np.full(horizon, -1, dtype=np.int64)
        self.step = 0  # steps applied (observations and fills) since the ring started


class Accuracy:
    def __init__(self, horizon: int, fraction: float, metrics: ModelMetrics) -> None:
        self.horizon = horizon
        self._threshold = int(fraction * 2**32)
        self._metrics = metrics
        self._rings: dict[str, Ring] = {}
        self._ks = np.arange(1, horizon + 1, dtype=np.int64)
        self.enabled = self._threshold > 0

    def sampled(self, stream_id: str) -> bool:
        return zlib.crc32(stream_id.encode()) < self._threshold

    def private_ring(self, stream_id: str, fresh: bool) -> Ring | None:
        """A request's own copy of the stream's ring (a new one if fresh), or None if the
        stream is not sampled. Installed by ``install`` only when the request commits."""
        if not self._threshold or zlib.crc32(stream_id.encode()) >= self._threshold:
            return None
        ring = Ring(self.horizon)
        live = None if fresh else self._rings.get(stream_id)
        if live is not None:
            ring.medians[:] = live.medians
            ring.origins[:] = live.origins
            ring.step = live.step
        return ring

    def install(self, stream_id: str, ring: Ring, scores: list[tuple[int, float]]) -> None:
        """Commit a request's ring and the horizon-step errors it scored."""
        self._rings[stream_id] = ring
        abs_error, scored = self._metrics.abs_error, self._metrics.scored
        for k, err in scores:
            abs_error[k - 1].inc(err)
            scored[k - 1].inc()

    def forget(self, stream_id: str) -> None:
        self._rings.pop(stream_id, None)

    def score_one_step(self, errors: float, count: int) -> None:
        if count:
            self._metrics.abs_error[0].inc(errors)
            self._metrics.scored[0].inc(count)

    def score_ring(
        self, ring: Ring, truth: float, sink: list[tuple[int, float]] | None = None
    ) -> None:
        """Score the truth of step ring.step against forecasts made k steps before it.

        Horizon step 1 is left to score_one_step, which sees every stream. With a sink,
        the (step, error) pairs are collected there (counted on commit) instead.
        """
        h = self.horizon
        origins = ring.step - self._ks
        rows = origins % h
        # origins < 0 predate the ring: their slots still hold the -1 sentinel, which would
        # otherwise match and score the truth against an all-zero forecast.
        valid = (ring.origins[rows] == origins) & (origins >= 0)
        valid[0] = False
        if not valid.any():
            return
        errs = np.abs(ring.medians[rows[valid], self._ks[valid] - 1] - truth)
        if sink is not None:
            sink.extend(zip(self._ks[valid].tolist(), errs.tolist(), strict=True))
            return
        for k, err in zip(self._ks[valid].tolist(), errs.tolist(), strict=True):
            self._metrics.abs_error[k - 1].inc(err)
            self._metrics.scored[k - 1].inc()

    def record(self, ring: Ring, medians: np.ndarray) -> None:
        """The forecast made after step ring.step (medians for steps +1..+H)."""
        row = ring.step % self.horizon
        ring.medians[row] = medians
        ring.origins[row] = ring.step
