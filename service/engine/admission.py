"""Admission of one model: whole requests in, or none, before any work, and never more
admitted than the model drains within a target time.

Each request holds its cost (the observations it brings: model steps at least) from
before it waits for its streams until it has answered; one that does not fit under the
bound is refused at once with 503 + Retry-After. The bound is the smaller of the
configured rows (``admission_rows``) and the model's measured drain rate (rows answered
per second of time with work in flight) times ``admission_seconds``: on a slow or
loaded machine, or with a larger model, what is admitted still finishes in about that
long, and the rest is refused before it costs anything. An admitted request that waited
for a busy stream longer than ``deadline`` is refused (503) when its turn comes, before
any of its work: the wait it was admitted for did not hold.

The clock is injected, so tests drive the rate and the deadline without sleeping.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from service.errors import QueueFull
from service.metrics import ModelMetrics

# Busy time (seconds with work held) per rate sample: long enough to average over many
# requests and batches, short enough to follow a machine that slows down.
WINDOW_SECONDS = 0.25


class Ticket:
    """One request's hold: its cost and when it was admitted (for the deadline)."""

    __slots__ = ("at", "cost")

    def __init__(self, cost: int, at: float) -> None:
        self.cost = cost
        self.at = at


class Admission:
    def __init__(
        self,
        limit: int,
        metrics: ModelMetrics,
        seconds: float = 1.0,
        deadline: float = 1.0,
        floor: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_limit = limit
        self.limit = limit  # the bound now: min(max_limit, rate x seconds), >= floor
        self.seconds = seconds
        self.deadline = deadline
        self.floor = min(floor, limit)
        self.clock = clock
        self.held = 0
        self.rate: float | None = None  # rows per busy second, smoothed over windows
        self._metrics = metrics
        self._since = 0.0  # start of the busy time not yet added to _busy
        self._busy = 0.0  # busy seconds of this window, up to _since
        self._done = 0  # rows answered in this window

    def check(self, cost: int = 1) -> None:
        """Refuse now what could not be admitted, from a cheap lower bound of its cost
        (before its body is read): under overload, refusing must cost far less than the
        work it protects, or refusals starve admitted work."""
        if self.held and self.held + cost > self.limit:
            self._refuse()

    def reserve(self, cost: int) -> Ticket:
        """Admit ``cost`` now (or refuse with 503): a lower bound, taken after the body
        arrived and before it is parsed; ``hold`` with the ticket tops it up to the
        request's exact cost, so a burst cannot parse more than fits."""
        if self.held and self.held + cost > self.limit:
            self._refuse()
        if not self.held:
            self._since = self.clock()
        self.held += cost
        return Ticket(cost, self.clock())

    def grow(self, ticket: Ticket, cost: int) -> None:
        """The request's exact cost: refused whole if the increase does not fit (a
        request larger than the bound is still admitted when it is alone)."""
        extra = cost - ticket.cost
        if extra > 0 and self.held > ticket.cost and self.held + extra > self.limit:
            self._drop(ticket, done=False)  # refused: its reservation is not work done
            self._refuse()
        self.held += extra
        ticket.cost = cost

    def release(self, ticket: Ticket) -> None:
        self._drop(ticket, done=True)

    def _drop(self, ticket: Ticket, done: bool) -> None:
        cost, ticket.cost = ticket.cost, 0
        if not cost:
            return
        self.held -= cost
        if done:
            self._done += cost
        now = self.clock()
        if not self.held:
            self._busy += now - self._since
            self._since = now
        busy = self._busy + (now - self._since if self.held else 0.0)
        if busy >= WINDOW_SECONDS:
            sample = self._done / busy
            self.rate = sample if self.rate is None else 0.5 * (self.rate + sample)
            bound = int(self.rate * self.seconds)
            self.limit = max(self.floor, min(self.max_limit, bound))
            self._busy, self._done, self._since = 0.0, 0, now

    @contextlib.contextmanager
    def hold(self, cost: int, ticket: Ticket | None = None) -> Iterator[Ticket]:
        """Hold ``cost`` for the block; with a ``ticket`` (a reservation its caller
        releases) top it up to ``cost`` instead."""
        if ticket is not None:
            self.grow(ticket, cost)
            yield ticket
            return
        own = self.reserve(cost)
        try:
            yield own
        finally:
            self.release(own)

    def late(self, ticket: Ticket) -> bool:
        """Whether an admitted request waited past the deadline (checked only by those
        that had to wait, when their turn comes)."""
        return self.clock() - ticket.at > self.deadline

    def refuse_late(self) -> QueueFull:
        self._metrics.queue_full.inc()
        return QueueFull(
            f"the request waited more than {self.deadline:g} s for its stream; retry shortly",
            retry_after=1.0,
        )

    def _refuse(self) -> None:
        self._metrics.queue_full.inc()
        raise QueueFull(
            f"the model has as much work in flight as it can finish in {self.seconds:g} s "
            f"({self.limit} rows); retry shortly",
            retry_after=1.0,
        )
