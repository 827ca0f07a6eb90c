"""The Redis state backend: Redis is the system of record, the memory arena its cache.

A stream is one Redis string ``fc:{<model>:<stream>}:<version>`` (the hash tag keeps a
stream on one Cluster shard) holding one packed little-endian record: the version token
of its last write, seq, ts, count, fill streak, then the recurrent state, the last
forecast (kept to answer retries) and the last inputs (to fill gaps), as float32.

Commits are optimistic: ``put``/``put_rows`` write the cache and stage the stream with
the version its step started from; ``persist`` then sends every staged stream of a
request or batch in ONE script call, which writes a stream only if its stored version is
still that one (a fresh random token replaces it, so a forget-and-recreate elsewhere can
never look unchanged). A stream whose write lost is dropped from the cache, so the
caller reloads and re-plans it. Nothing is acknowledged before ``persist`` returned.
Every Redis failure (down, timeout) becomes a 503 with Retry-After, and the streams
whose write may or may not have landed are dropped from the cache, to be read back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import struct
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from service.engine.redis_link import REDIS_FAILURES, BackendHealth, Link
from service.engine.store import MemoryStateStore, StoreLayout

log = logging.getLogger(__name__)

# The record's fixed head (see record_dtype): version, seq, ts, count, streak, pad.
HEAD = struct.Struct("<qqdqii")
# Up to this many streams a write packs its records with struct (a few us each); more
# go through one structured numpy array (per field, not per stream).
SMALL_WRITE = 8


def record_dtype(layout: StoreLayout) -> np.dtype:
    return np.dtype(
        [
            ("version", "<i8"),  # first: the write script compares these 8 bytes
            ("seq", "<i8"),
            ("ts", "<f8"),
            ("count", "<i8"),
            ("streak", "<i4"),
            ("pad", "<i4"),
            ("state", "<f4", (layout.state_size,)),
            ("forecast", "<f4", (layout.forecast_size,)),
            ("inputs", "<f4", (layout.n_inputs,)),
        ]
    )


class RedisStateStore(MemoryStateStore):
    durable = True

    def __init__(
        self,
        layout: StoreLayout,
        capacity: int,
        is_busy: Callable[[str], bool],
        on_evict: Callable[[list[str]], None],
        link: Link,
        model: str,
        version: str,
        ttl_seconds: float,
    ) -> None:
        super().__init__(layout, capacity, is_busy, on_evict)
        self.link = link
        self.health: BackendHealth = link.health
        self._prefix = f"fc:{{{model}:"
        self._suffix = f"}}:{version}"
        self._ttl_ms = str(max(1, int(ttl_seconds * 1000)))
        self.dtype = record_dtype(layout)
        self.version = np.zeros(capacity, dtype=np.int64)  # 0: not in Redis
        self._staged: dict[int, int] = {}  # slot -> version its step started from
        self._rng = np.random.default_rng()
        self._random = random.Random()
        self._pending: list[tuple[list[int], asyncio.Future[list[bool]]]] = []
        self._flush_due = False

    def key(self, stream_id: str) -> str:
        return self._prefix + stream_id + self._suffix

    # -- staging (the cache is written at once; Redis by persist) --------------------

    def _written(self, slots: np.ndarray) -> None:
        # The version each row's step started from (0: a stream new to this cache).
        staged = self._staged
        for slot, started in zip(slots.tolist(), self.version[slots].tolist(), strict=True):
            staged[slot] = started

    def _release(self, stream_id: str, slot: int) -> None:
        super()._release(stream_id, slot)
        self.version[slot] = 0
        self._staged.pop(slot, None)

    def drop(self, stream_ids: Iterable[str]) -> None:
        """Forget streams from the cache only (Redis keeps them): the next use reloads."""
        for sid in stream_ids:
            slot = self.index.get(sid)
            if slot is not None:
                self._release(sid, slot)

    # -- the write: every persist of one loop turn in one script call ------------------

    async def persist(self, slots: list[int]) -> list[bool]:
        """Write the staged streams; per slot whether it was written. A stream that lost
        (another replica moved it) is dropped from the cache.

        Every persist of the same loop turn (the requests one ORT batch answered resume
        together) goes out in ONE script call, sent at the end of that turn by a plain
        callback: no task, no extra await on the way."""
        if not slots:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[bool]] = loop.create_future()
        self._pending.append((slots, future))
        if not self._flush_due:
            self._flush_due = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_due = False
        batch, self._pending = self._pending, []
        slots = [s for part, _ in batch for s in part]
        ids = [str(self.ids[s]) for s in slots]
        try:
            new = self._new_versions(len(slots))
            records = self._records(slots, new)
            started = self._started(slots)
            reply = self.link.write([self.key(i) for i in ids], self.dtype.itemsize,
                                    self._ttl_ms, records, started)  # fmt: skip
        except Exception as exc:  # nothing was sent
            self._settle_failed(batch, ids, exc)
            return
        reply.add_done_callback(lambda done: self._landed(batch, slots, ids, new, done))

    def _landed(
        self,
        batch: list[tuple[list[int], asyncio.Future[list[bool]]]],
        slots: list[int],
        ids: list[str],
        new: list[int],
        reply: asyncio.Future[list[int]],
    ) -> None:
        exc = asyncio.CancelledError() if reply.cancelled() else reply.exception()
        if exc is not None:
            self._settle_failed(batch, ids, exc)
            return
        self.health.answered()
        self.version[slots] = new
        ok = [True] * len(slots)
        for pos in reply.result():
            ok[int(pos) - 1] = False
            self.drop([ids[int(pos) - 1]])
        start = 0
        for part, future in batch:
            if not future.done():
                future.set_result(ok[start : start + len(part)])
            start += len(part)

    def _settle_failed(
        self,
        batch: list[tuple[list[int], asyncio.Future[list[bool]]]],
        ids: list[str],
        exc: BaseException,
    ) -> None:
        self.drop(ids)  # the outcome is unknown: read them back when next used
        error = self.health.failed(exc) if isinstance(exc, REDIS_FAILURES) else exc
        for _, future in batch:
            if not future.done():
                future.set_exception(error)

    def _new_versions(self, n: int) -> list[int]:
        if n <= SMALL_WRITE:
            rand = self._random.getrandbits
            return [rand(62) + 1 for _ in range(n)]
        return self._rng.integers(1, 2**62, size=n, dtype=np.int64).tolist()

    def _started(self, slots: list[int]) -> bytes:
        staged = self._staged
        started = [staged.pop(s, 0) for s in slots]
        return struct.pack(f"<{len(started)}q", *started)

    def _records(self, slots: list[int], new: list[int]) -> bytes:
        """The packed records of the slots' cache rows, stamped with their new versions."""
        if len(slots) <= SMALL_WRITE:
            parts: list[bytes] = []
            for slot, version in zip(slots, new, strict=True):
                parts += (
                    HEAD.pack(version, self.seq[slot], self.ts[slot], self.count[slot],
                              self.streak[slot], 0),
                    self.state[slot].tobytes(),
                    self.forecasts[slot].tobytes(),
                    self.last_inputs[slot].tobytes(),
                )  # fmt: skip
            return b"".join(parts)
        arr = np.asarray(slots, dtype=np.int64)
        rec = np.zeros(len(slots), dtype=self.dtype)
        rec["version"] = new
        rec["seq"], rec["ts"] = self.seq[arr], self.ts[arr]
        rec["count"], rec["streak"] = self.count[arr], self.streak[arr]
        rec["state"], rec["forecast"] = self.state[arr], self.forecasts[arr]
        rec["inputs"] = self.last_inputs[arr]
        return rec.tobytes()

    # -- reads -------------------------------------------------------------------------

    async def load(self, stream_ids: list[str]) -> list[tuple[str, int]]:
        """Read streams the cache does not hold (one MGET); returns (id, slot) of those
        found (streams Redis does not hold stay absent)."""
        want = [sid for sid in stream_ids if sid not in self.index]
        if not want:
            return []
        found = await self._call(self.link.mget([self.key(sid) for sid in want]))
        slots: list[tuple[str, int]] = []
        for sid, data in zip(want, found, strict=True):
            if data is None:
                continue
            if not isinstance(data, bytes) or len(data) != self.dtype.itemsize:
                log.error("stream %r in Redis has a record of another layout; ignored", sid)
                continue
            rec = np.frombuffer(data, dtype=self.dtype)[0]
            slot = self.put(
                sid, rec["state"], rec["forecast"], rec["inputs"], int(rec["seq"]),
                float(rec["ts"]), int(rec["count"]), True, int(rec["streak"]),
            )  # fmt: skip
            del self._staged[slot]  # read from Redis: nothing to write back
            self.version[slot] = int(rec["version"])
            slots.append((sid, slot))
        return slots

    async def stale(self, stream_ids: list[str]) -> list[str]:
        """The streams whose cached copy is not what Redis holds (one script call)."""
        if not stream_ids:
            return []
        stored = await self._call(self.link.versions([self.key(sid) for sid in stream_ids]))
        out: list[str] = []
        for sid, raw in zip(stream_ids, stored, strict=True):
            token = int.from_bytes(raw, "little", signed=True) if raw else 0
            slot = self.index.get(sid)
            if token != (0 if slot is None else int(self.version[slot])):
                out.append(sid)
        return out

    async def delete(self, stream_id: str) -> bool:
        """Forget a stream everywhere; whether Redis or the cache held it."""
        removed = await self._call(self.link.delete(self.key(stream_id)))
        cached = self.forget(stream_id)
        return bool(removed) or cached

    async def _call(self, call: Any) -> Any:
        """Await one Redis call: a failure becomes the 503 (and readiness false)."""
        try:
            result = await call
        except REDIS_FAILURES as exc:
            raise self.health.failed(exc) from exc
        self.health.answered()
        return result
