"""Planning a request for a stream: exactly-once, order, gaps and fill streaks.

Everything a request will do is decided and validated here, before any model step:
the result is a Job (the steps to run on private state) or, for a retry of what the
stream applied last, the same answer again. The caller holds the stream's lock.
"""

from __future__ import annotations

from service.engine.accuracy import Accuracy
from service.engine.calendar import Calendar
from service.engine.step import Job, Step, StepSpec
from service.engine.store import NO_SEQ, StateStore
from service.errors import GapTooLarge, InvalidInput, OutOfOrder, PayloadTooLarge
from service.metrics import ModelMetrics
from service.protocol.answers import Answers, Body
from service.protocol.requests import Obs
from service.protocol.timestamps import format_ts


class Planner:
    def __init__(
        self,
        spec: StepSpec,
        store: StateStore,
        calendar: Calendar,
        answers: Answers,
        accuracy: Accuracy,
        metrics: ModelMetrics,
        max_gap: int,
        max_steps: int = 1 << 62,
    ) -> None:
        self.spec = spec
        self.store = store
        self.calendar = calendar
        self.answers = answers
        self.accuracy = accuracy
        self.metrics = metrics
        self.max_gap = max_gap
        self.max_steps = max_steps  # observations plus filled periods, per request
        self.horizon = calendar.horizon

    def _steps(
        self, obs: list[Obs], prev_ts: float | None, offset: int, where: str, streak: int = 0
    ) -> tuple[list[Step], int, int]:
        """Plan the steps; returns (steps, filled periods, fill streak at the end).

        ``streak`` is the stream's run of filled periods before this request, so the
        gap limit counts consecutive filled periods across requests."""
        steps: list[Step] = []
        run: list[Obs] = []
        filled = 0
        if len(obs) > self.max_steps:
            raise self._too_many_steps(where)
        stored = prev_ts is not None  # the first gap, if any, is from the stored last ts
        if not self.calendar.last_ts_ok(obs[-1].ts):  # ts increase: the last is the latest
            raise InvalidInput(
                f"{where}[{offset + len(obs) - 1}].ts: too late, its forecast horizon "
                f"({self.horizon} periods) would end after 9999-12-31T23:59:59Z"
            )
        for i, o in enumerate(obs, start=offset):
            day = self.calendar.weekend(o.ts)
            if day is not None:
                raise InvalidInput(
                    f"{where}[{i}].ts: {format_ts(o.ts)} is a {day} (UTC), and a "
                    "business-day model steps Monday to Friday: send the trading day's date "
                    "(a local midnight east of UTC is the day before in UTC)"
                )
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
                            f"more than the limit of {self.max_gap} (FORECAST_MAX_GAP_STEPS); "
                            f"{advice}"
                        )
                    if len(obs) + filled + gap > self.max_steps:  # before building them
                        raise self._too_many_steps(where)
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
                        f"than the limit of {self.max_gap} (FORECAST_MAX_GAP_STEPS)"
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

    def _too_many_steps(self, where: str) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"{where}: more than {self.max_steps} model steps (observations and filled "
            "periods) in one request",
            code="too_many_steps",
        )

    def plan(
        self, stream_id: str, obs: list[Obs], reset: bool, where: str = "observations"
    ) -> Job | Body:
        """Decide what a request does to a stream (caller holds the stream's lock);
        ``where`` is the observations' place in the request, for its errors."""
        store = self.store
        slot = store.lookup(stream_id)
        if slot is None:
            return self._fresh(stream_id, obs, where)
        last_seq, last_ts, _ = store.read(slot)
        final = obs[-1]
        by_seq = final.seq is not None and last_seq != NO_SEQ
        if (final.seq == last_seq) if by_seq else (final.ts == last_ts):
            # A retry of what was applied last: same answer, no step.
            self.metrics.duplicates.inc(len(obs))
            store.touch(slot)
            return self.stored(stream_id, slot, duplicate=True)
        if reset:
            return self._fresh(stream_id, obs, where)
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
        forecast = store.forecast(slot).reshape(self.horizon, -1)
        inputs = store.inputs(slot).tolist()
        job = Job(self.spec, stream_id, steps, slot, forecast, inputs, filled, len(obs) - k, False)
        job.streak = streak
        job.ring = self.accuracy.private_ring(stream_id, fresh=False)
        return job

    def _fresh(self, stream_id: str, obs: list[Obs], where: str) -> Job:
        """A new stream, or one the client resets: stepped from zero state."""
        steps, filled, streak = self._steps(obs, None, 0, where)
        job = Job(self.spec, stream_id, steps, -1, None, None, filled, len(obs), True)
        job.streak = streak
        job.ring = self.accuracy.private_ring(stream_id, fresh=True)
        return job

    def stateless(self, obs: list[Obs]) -> Job:
        """A history run from zero state, never committed."""
        steps, filled, _ = self._steps(obs, None, 0, "observations")
        return Job(self.spec, None, steps, -1, None, None, filled, len(obs), True)

    def stored(self, stream_id: str, slot: int, duplicate: bool) -> Body:
        """The stream's status, or (duplicate) the answer to a retry of its last step."""
        store = self.store
        seq, ts, count = store.read(slot)
        forecast = store.forecast(slot).reshape(self.horizon, -1).copy()
        return self.answers.stored(
            stream_id, None if seq == NO_SEQ else seq, ts, None if duplicate else count, forecast
        )
