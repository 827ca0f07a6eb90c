"""The Redis state backend: Redis is the system of record, the memory arena its cache.

A stream is one Redis hash ``fc:{<model>:<stream>}:<version>`` (the hash tag keeps a
stream on one Cluster shard) with two fields: ``v``, the version token of the last write,
and ``d``, one packed little-endian record (seq, ts, count, fill streak, then the
recurrent state, the last forecast kept for retries and the last inputs, as float32).

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

# KEYS: one per stream. ARGV: record size, ttl ms, packed records, then per stream the
# expected version ("0": absent) and the new one. Returns 1 (written) or 0 per stream.
WRITE = """
local size = tonumber(ARGV[1])
local ttl = ARGV[2]
local blob = ARGV[3]
local out = {}
for i, key in ipairs(KEYS) do
  local cur = redis.call('HGET', key, 'v') or '0'
  if cur == ARGV[2 + 2 * i] then
    local record = string.sub(blob, (i - 1) * size + 1, i * size)
    redis.call('HSET', key, 'v', ARGV[3 + 2 * i], 'd', record)
    redis.call('PEXPIRE', key, ttl)
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# KEYS: streams. Returns [version, record] per stream (nil, nil: absent).
READ = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HMGET', key, 'v', 'd')
end
return out
"""

# KEYS: streams. Returns each stored version ("0": absent).
VERSIONS = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HGET', key, 'v') or '0'
end
return out
"""

# Down, timed out, loading, out of memory, read-only replica...: all are "retry later".
REDIS_FAILURES = (redis_errors.RedisError, OSError)


def record_dtype(layout: StoreLayout) -> np.dtype:
    return np.dtype(
        [
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
        self._read = client.register_script(READ)
        self._versions = client.register_script(VERSIONS)
        self._rng = np.random.default_rng()
        self._pending: list[tuple[list[int], asyncio.Future[list[bool]]]] = []
        self._writer: asyncio.Task[None] | None = None

    def key(self, stream_id: str) -> str:
        return self._prefix + stream_id + self._suffix

    # -- staging (the cache is written at once; Redis by persist) --------------------

    def put(
        self,
        stream_id: str,
        state: np.ndarray,
        forecast: np.ndarray,
        inputs: np.ndarray,
        seq: int,
        ts: float,
        added: int,
        reset: bool,
        streak: int = 0,
    ) -> int:
        known = self.index.get(stream_id)
        started = 0 if known is None else int(self.version[known])
        slot = super().put(stream_id, state, forecast, inputs, seq, ts, added, reset, streak)
        self._staged[slot] = started
        return slot

    def put_rows(
        self,
        slots: np.ndarray,
        state: np.ndarray,
        forecast: np.ndarray,
        inputs: np.ndarray,
        seq: np.ndarray,
        ts: np.ndarray,
    ) -> None:
        super().put_rows(slots, state, forecast, inputs, seq, ts)
        for slot, started in zip(slots.tolist(), self.version[slots].tolist(), strict=True):
            self._staged[slot] = started

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
        arr = np.asarray(slots, dtype=np.int64)
        rec = np.zeros(len(slots), dtype=self.dtype)
        rec["seq"], rec["ts"] = self.seq[arr], self.ts[arr]
        rec["count"], rec["streak"] = self.count[arr], self.streak[arr]
        rec["state"], rec["forecast"] = self.state[arr], self.forecasts[arr]
        rec["inputs"] = self.last_inputs[arr]
        new = self._rng.integers(1, 2**62, size=len(slots), dtype=np.int64)
        ids = [self.ids[s] for s in slots]
        args: list[bytes | str | int] = [self.dtype.itemsize, self._ttl_ms, rec.tobytes()]
        for slot, token in zip(slots, new.tolist(), strict=True):
            args.append(self._staged.pop(slot, 0))
            args.append(token)
        try:
            written = await self._write(keys=[self.key(str(i)) for i in ids], args=args)
        except REDIS_FAILURES as exc:
            self.drop(str(i) for i in ids if i is not None)  # outcome unknown: read it back
            raise self.health.failed(exc) from exc
        self.health.ok = True
        ok = [bool(w) for w in written]
        lost = [str(sid) for sid, w in zip(ids, ok, strict=True) if not w]
        for slot, token, w in zip(slots, new.tolist(), ok, strict=True):
            if w:
                self.version[slot] = token
        self.drop(lost)
        return ok

    async def load(self, stream_ids: list[str]) -> list[tuple[str, int]]:
        """Read streams the cache does not hold (one script call); returns (id, slot) of
        those found (streams Redis does not hold stay absent)."""
        want = [sid for sid in stream_ids if sid not in self.index]
        if not want:
            return []
        try:
            found = await self._read(keys=[self.key(sid) for sid in want])
        except REDIS_FAILURES as exc:
            raise self.health.failed(exc) from exc
        self.health.ok = True
        slots: list[tuple[str, int]] = []
        for sid, (token, data) in zip(want, found, strict=True):
            if token is None or data is None:
                continue
            if len(data) != self.dtype.itemsize or sid in self.index:
                log.error("stream %r in Redis has a record of another layout; ignored", sid)
                continue
            rec = np.frombuffer(data, dtype=self.dtype)[0]
            slot = super().put(
                sid, rec["state"], rec["forecast"], rec["inputs"], int(rec["seq"]),
                float(rec["ts"]), int(rec["count"]), True, int(rec["streak"]),
            )  # fmt: skip
            self.version[slot] = int(token)
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
        for sid, token in zip(stream_ids, stored, strict=True):
            slot = self.index.get(sid)
            if int(token) != (0 if slot is None else int(self.version[slot])):
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
