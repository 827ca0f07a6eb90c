"""Per-stream FIFO locks that cost nothing for streams nobody is waiting on.

A stream with work in flight has an entry in ``_busy``; the common case (no other
request on that stream) takes and drops it without awaiting. Waiters queue in arrival
order, which is what keeps observations of one stream in arrival order. The queue of
one stream is bounded: a client flooding one stream gets 429 instead of parking an
unbounded number of parsed requests behind its lock.
"""

from __future__ import annotations

import asyncio
from collections import deque
from itertools import compress

from service.errors import TooManyRequests


class StreamLocks:
    def __init__(self, max_waiting: int = 1 << 30) -> None:
        self._busy: dict[str, deque[asyncio.Future[None]] | None] = {}
        self.max_waiting = max_waiting

    def busy(self, stream_id: str) -> bool:
        return stream_id in self._busy

    def enqueue(self, stream_id: str) -> asyncio.Future[None] | None:
        """Take the lock now (None) or join its queue at once, in call order (a future).

        Joining synchronously is what keeps arrival order even when the caller only
        awaits later (a multi-stream request, a WebSocket message task).
        """
        if stream_id not in self._busy:
            self._busy[stream_id] = None
            return None
        waiters = self._busy[stream_id]
        if waiters is None:
            waiters = self._busy[stream_id] = deque()
        elif len(waiters) >= self.max_waiting:
            raise TooManyRequests(
                f"stream_id: {self.max_waiting} requests already wait for this stream; "
                "send its observations in fewer, larger requests",
                code="stream_busy",
            )
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(future)
        return future

    def take_free(self, stream_ids: list[str]) -> list[bool]:
        """Take the lock of every stream in the list nobody holds, as ``enqueue`` would
        (ids distinct); whether each was taken. One set operation when none is busy."""
        busy = self._busy
        if busy.keys().isdisjoint(stream_ids):
            busy.update(dict.fromkeys(stream_ids))
            return [True] * len(stream_ids)
        free = [sid not in busy for sid in stream_ids]
        busy.update(dict.fromkeys(compress(stream_ids, free)))
        return free

    async def wait(self, stream_id: str, future: asyncio.Future[None] | None) -> None:
        if future is None:
            return
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release(stream_id)  # ownership was handed to us just as we left
            raise

    async def acquire(self, stream_id: str) -> None:
        await self.wait(stream_id, self.enqueue(stream_id))

    def release_many(self, stream_ids: list[str]) -> None:
        busy = self._busy
        for sid in stream_ids:
            if busy.get(sid) is None:
                del busy[sid]  # nobody waiting: the common case, no call needed
            else:
                self.release(sid)

    def release(self, stream_id: str) -> None:
        waiters = self._busy.get(stream_id)
        while waiters:
            future = waiters.popleft()
            if not future.done():
                future.set_result(None)  # ownership passes straight to the next waiter
                return
        del self._busy[stream_id]
