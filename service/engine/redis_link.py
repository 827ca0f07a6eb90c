"""The Redis state backend's calls: the scripts, readiness, and the link to one server.

The store (redis_store.py) asks a link for five things: a conditional batch write, the
stored versions of streams, a batch read, a delete and a ping. ``RedisLink`` sends each
to one Redis server (a primary, or a proxy) as ONE command over one pipelined
connection (redis_wire.py); ``ClusterLink`` (redis_cluster.py) splits them by hash slot
for a Redis Cluster. The registry picks one from the settings.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable
from typing import Any, Protocol

from redis import exceptions as redis_errors

from service.engine.redis_wire import ReplyError, Wire
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

WRITE_SHA = hashlib.sha1(WRITE.encode()).hexdigest()
VERSIONS_SHA = hashlib.sha1(VERSIONS.encode()).hexdigest()

# Down, timed out, loading, out of memory, read-only replica...: all are "retry later".
REDIS_FAILURES = (redis_errors.RedisError, ReplyError, OSError, asyncio.TimeoutError)


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

    def answered(self) -> None:
        if not self.ok:
            log.info("Redis state backend is back")
        self.ok = True

    async def probe(self, ping: Awaitable[Any]) -> bool:
        """Readiness probe of the backend (the requests' own calls update it too)."""
        try:
            await ping
        except Exception as exc:  # any failure of the probe means "not ready"
            self.failed(exc)
            return False
        self.answered()
        return True


class Link(Protocol):
    """What the store needs of Redis. Each call's failure raises one of REDIS_FAILURES."""

    health: BackendHealth

    def write(
        self, keys: list[str], size: int, ttl_ms: str, records: bytes, started: bytes
    ) -> asyncio.Future[list[int]]:
        """Run WRITE over the streams; the 1-based positions it did NOT write."""
        ...

    async def versions(self, keys: list[str]) -> list[bytes]: ...
    async def mget(self, keys: list[str]) -> list[bytes | None]: ...
    async def delete(self, key: str) -> int: ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


class RedisLink:
    """One Redis server: every call is one command (one round trip)."""

    def __init__(self, url: str, timeout: float) -> None:
        self.wire = Wire(url, timeout)
        self.wire.scripts = [WRITE.encode(), VERSIONS.encode()]
        self.health = BackendHealth()

    def write(
        self, keys: list[str], size: int, ttl_ms: str, records: bytes, started: bytes
    ) -> asyncio.Future[Any]:
        return self.wire.call(
            "EVALSHA", WRITE_SHA, len(keys), *keys, size, ttl_ms, records, started
        )

    async def versions(self, keys: list[str]) -> list[bytes]:
        return list(await self.wire.call("EVALSHA", VERSIONS_SHA, len(keys), *keys))

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        return list(await self.wire.call("MGET", *keys))

    async def delete(self, key: str) -> int:
        return int(await self.wire.call("DEL", key))

    async def ping(self) -> bool:
        return await self.health.probe(self.wire.call("PING"))

    async def close(self) -> None:
        await self.wire.close()
