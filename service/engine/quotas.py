"""Per-key stream quotas of one model: live streams, new streams per second, and which
streams eviction must spare.

With authentication on, each stream belongs to the key (principal) that created it. A
key may hold at most its quota of live streams and create new ones at its rate (a token
bucket with one second's burst); past either it gets 429 before any work. Eviction at
the model's stream cap never takes a stream younger than the grace period whose owner
is within its quota, so a key flooding new ids evicts old or over-quota streams (its
own first, as they are the least recently used) and never another client's fresh ones.
Without authentication nothing is tracked and nothing here costs anything.

A new stream is reserved when its request is admitted (it counts as live from then), and
the reservation is settled when the request has answered: kept for each stream it
created, given back for the rest. So concurrent requests of one key cannot together
create more streams than its quota, whatever their interleaving.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from service.errors import TooManyRequests
from service.protocol.access import Principal


class StreamQuotas:
    def __init__(
        self,
        max_streams: int | None,
        new_per_second: float,
        grace_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_streams = max_streams  # per key, unless the key sets its own
        self.new_per_second = new_per_second
        self.grace = grace_seconds
        self.clock = clock
        # stream id -> (owner's name, when created): one entry per stream
        self.owner: dict[str, tuple[str, float]] = {}
        self.live: dict[str, int] = {}  # owner's name -> live streams and reservations
        self.limit: dict[str, int | None] = {}  # owner's name -> its live-stream quota
        self._tokens: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)

    def _limit_of(self, who: Principal) -> int | None:
        return who.max_streams if who.max_streams is not None else self.max_streams

    def admit_new(self, who: Principal) -> None:
        """A key is about to create a stream: refuse (429) past its quota or its rate,
        else reserve it (``settle`` keeps or gives back the reservation)."""
        limit = self._limit_of(who)
        live = self.live.get(who.name, 0)
        if limit is not None and live >= limit:
            raise TooManyRequests(
                f"stream_id: this key holds its quota of {limit} live streams; forget some "
                "(DELETE) or let them expire",
                code="stream_quota",
                retry_after=60.0,
            )
        rate = who.new_streams_per_second or self.new_per_second
        now = self.clock()
        tokens, at = self._tokens.get(who.name, (rate, now))
        tokens = min(rate, tokens + (now - at) * rate)  # the burst is one second's worth
        if tokens < 1.0:
            self._tokens[who.name] = (tokens, now)
            raise TooManyRequests(
                f"stream_id: this key creates new streams faster than {rate:g} per second",
                code="new_stream_rate",
                retry_after=1.0,
            )
        self._tokens[who.name] = (tokens - 1.0, now)
        self.live[who.name] = live + 1

    def settle(self, who: Principal, stepped: Iterable[str], reserved: int) -> None:
        """After a request answered: the key owns each stream it stepped that had no
        owner (the ones it created); its ``reserved`` new streams are thereby kept, or
        given back (a stream that failed, or that a concurrent request created first)."""
        owner = self.owner
        name = who.name
        mark = (name, self.clock())
        new = 0
        for sid in stepped:
            if sid not in owner:
                owner[sid] = mark
                new += 1
        if new or reserved:
            self.live[name] = self.live.get(name, 0) + new - reserved
            self.limit[name] = self._limit_of(who)

    def forget(self, stream_ids: Iterable[str]) -> None:
        for sid in stream_ids:
            owned = self.owner.pop(sid, None)
            if owned is not None:
                self.live[owned[0]] -= 1

    def protected(self, stream_id: str) -> bool:
        """Whether eviction must spare this stream: young, and its owner within quota."""
        owned = self.owner.get(stream_id)
        if owned is None:
            return False
        name, created = owned
        if self.clock() - created >= self.grace:
            return False
        limit = self.limit.get(name)
        return limit is None or self.live[name] <= limit
