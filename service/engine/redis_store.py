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
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from service.engine.store import MemoryStateStore, StoreLayout
from service.errors import Unavailable

log = logging.getLogger(__name__)

# KEYS: one per stream. ARGV: the record size, the TTL in ms, the packed records (each
# starts with its new 8-byte version), the versions the steps started from (8 bytes each,
# all zero: the stream did not exist). A stream is written only if its stored version is
# still the one its step started from. Returns the 1-based positions NOT written.
WRITE = """
local size = tonumber(ARGV[1])
local ttl = ARGV[2]
local blob = ARGV[3]
local expected = ARGV[4]
local absent = string.rep('\\0', 8)
local lost = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('GETRANGE', key, 0, 7)
  if cur == '' then cur = absent end
  if cur == string.sub(expected, i * 8 - 7, i * 8) then
    redis.call('SET', key, string.sub(blob, (i - 1) * size + 1, i * size), 'PX', ttl)
  else
    lost[#lost + 1] = i
  end
end
return lost
"""

# KEYS: streams. Returns each stored version, 8 bytes ("": absent).
VERSIONS = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('GETRANGE', key, 0, 7)
end
return out
"""

# Down, timed out, loading, out of memory, read-only replica...: all are "retry later".
REDIS_FAILURES = (redis_errors.RedisError, OSError)


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


class BackendHealth:
    """Whether Redis answered last (readiness), updated by every call and a pinger."""

    def __init__(self) -> None:
        self.ok = True

    def failed(self, exc: BaseException) -> Unavailable:
        if self.ok:
            log.error("Redis state backend unavailable: %s", exc)
        self.ok = False
        return Unavailable(
            "the state backend (Redis) is unavailable; retry shortly",
            code="state_backend_unavailable",
            retry_after=1.0,
        )


@dataclass
class RedisLink:
    """The client and readiness shared by every model's store of one service."""

    client: Redis
    health: BackendHealth = field(default_factory=BackendHealth)

    @classmethod
    def from_url(cls, url: str, timeout: float) -> RedisLink:
        client = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry_on_timeout=False,
            health_check_interval=0,
        )
        return cls(client)

    async def ping(self) -> bool:
        """Readiness probe of the backend (the requests' own calls update it too)."""
        try:
            await self.client.ping()
        except REDIS_FAILURES as exc:
            self.health.failed(exc)
            return False
        if not self.health.ok:
            log.info("Redis state backend is back")
        self.health.ok = True
        return True


class RedisStateStore(MemoryStateStore):
    durable = True

    def __init__(
        self,
        layout: StoreLayout,
        capacity: int,
        is_busy: Callable[[str], bool],
        on_evict: Callable[[list[str]], None],
        client: Redis,
        model: str,
        version: str,
        ttl_seconds: float,
        health: BackendHealth,
    ) -> None:
        super().__init__(layout, capacity, is_busy, on_evict)
        self.client = client
        self.health = health
        self._prefix = f"fc:{{{model}:"
        self._suffix = f"}}:{version}"
        self._ttl_ms = str(max(1, int(ttl_seconds * 1000)))
        self.dtype = record_dtype(layout)
        self.version = np.zeros(capacity, dtype=np.int64)  # 0: not in Redis
        self._staged: dict[int, int] = {}  # slot -> version its step started from
        self._write = client.register_script(WRITE)
        self._versions = client.register_script(VERSIONS)
        self._rng = np.random.default_rng()
        self._pending: list[tuple[list[int], asyncio.Future[list[bool]]]] = []
        self._writer: asyncio.Task[None] | None = None

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

    # -- Redis round trips -----------------------------------------------------------

    async def persist(self, slots: list[int]) -> list[bool]:
        """Write the staged streams; per slot whether it was written. A stream that lost
        (another replica moved it) is dropped from the cache.

        Every persist queued while a write is in flight (or in the same loop turn) goes
        out together in the next script call: one round trip for all the requests one
        ORT batch answered, not one per request."""
        if not slots:
            return []
        future: asyncio.Future[list[bool]] = asyncio.get_running_loop().create_future()
        self._pending.append((slots, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_pending())
        return await future

    async def _write_pending(self) -> None:
        while self._pending:
            await asyncio.sleep(0)  # one loop turn: requests resumed with this one join
            batch, self._pending = self._pending, []
            slots = [s for part, _ in batch for s in part]
            try:
                ok = await self._persist_now(slots)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            start = 0
            for part, future in batch:
                if not future.done():
                    future.set_result(ok[start : start + len(part)])
                start += len(part)

    async def _persist_now(self, slots: list[int]) -> list[bool]:
        n = len(slots)
        arr = np.asarray(slots, dtype=np.int64)
        rec = np.zeros(n, dtype=self.dtype)
        new = self._rng.integers(1, 2**62, size=n, dtype=np.int64)
        rec["version"] = new
        rec["seq"], rec["ts"] = self.seq[arr], self.ts[arr]
        rec["count"], rec["streak"] = self.count[arr], self.streak[arr]
        rec["state"], rec["forecast"] = self.state[arr], self.forecasts[arr]
        rec["inputs"] = self.last_inputs[arr]
        staged = self._staged
        started = np.fromiter((staged.pop(s, 0) for s in slots), dtype="<i8", count=n)
        ids = [str(self.ids[s]) for s in slots]
        args: list[bytes | str | int] = [
            self.dtype.itemsize, self._ttl_ms, rec.tobytes(), started.tobytes(),
        ]  # fmt: skip
        try:
            lost_at = await self._write(keys=[self.key(i) for i in ids], args=args)
        except REDIS_FAILURES as exc:
            self.drop(ids)  # the outcome is unknown: read them back when next used
            raise self.health.failed(exc) from exc
        self.health.ok = True
        self.version[arr] = new
        ok = [True] * n
        for pos in lost_at:
            ok[int(pos) - 1] = False
        self.drop(ids[int(pos) - 1] for pos in lost_at)
        return ok

    async def load(self, stream_ids: list[str]) -> list[tuple[str, int]]:
        """Read streams the cache does not hold (one MGET); returns (id, slot) of those
        found (streams Redis does not hold stay absent)."""
        want = [sid for sid in stream_ids if sid not in self.index]
        if not want:
            return []
        try:
            found = await self.client.mget([self.key(sid) for sid in want])
        except REDIS_FAILURES as exc:
            raise self.health.failed(exc) from exc
        self.health.ok = True
        slots: list[tuple[str, int]] = []
        for sid, data in zip(want, found, strict=True):
            if data is None:
                continue
            if not isinstance(data, bytes) or len(data) != self.dtype.itemsize:
                log.error("stream %r in Redis has a record of another layout; ignored", sid)
                continue
            rec = np.frombuffer(bytes(data), dtype=self.dtype)[0]
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
        try:
            stored = await self._versions(keys=[self.key(sid) for sid in stream_ids])
        except REDIS_FAILURES as exc:
            raise self.health.failed(exc) from exc
        self.health.ok = True
        out: list[str] = []
        for sid, raw in zip(stream_ids, stored, strict=True):
            token = int.from_bytes(raw, "little", signed=True) if raw else 0
            slot = self.index.get(sid)
            if token != (0 if slot is None else int(self.version[slot])):
                out.append(sid)
        return out

    async def delete(self, stream_id: str) -> bool:
        """Forget a stream everywhere; whether Redis or the cache held it."""
        try:
            removed = await self.client.delete(self.key(stream_id))
        except REDIS_FAILURES as exc:
            raise self.health.failed(exc) from exc
        self.health.ok = True
        cached = self.forget(stream_id)
        return bool(removed) or cached
