"""The state backend's link to a Redis Cluster (FORECAST_REDIS_CLUSTER=true).

A Cluster refuses a command whose keys span hash slots (CROSSSLOT), and every stream is
its own hash tag, so a batch is split by slot: one script call per slot, all of them
sent in one redis-py cluster pipeline, which sends each node its calls together (one
round trip per node, the nodes in parallel) and follows MOVED/ASK while slots migrate.
A stream's keys all carry its tag, so each call is still atomic and conditional per
stream, exactly as on one server. The results are put back in the batch's order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from service.engine.redis_link import VERSIONS, VERSIONS_SHA, WRITE, WRITE_SHA, BackendHealth


def by_slot(keys: list[str]) -> list[list[int]]:
    """The keys' positions grouped by hash slot (first-seen order)."""
    groups: dict[int, list[int]] = {}
    for pos, key in enumerate(keys):
        groups.setdefault(key_slot(key.encode()), []).append(pos)
    return list(groups.values())


class ClusterLink:
    def __init__(self, url: str, timeout: float) -> None:
        self.client = RedisCluster.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self.health = BackendHealth()
        self._scripts_loaded = False

    async def _load_scripts(self) -> None:
        # SCRIPT LOAD goes to every node: a slot may move to any of them.
        for source in (WRITE, VERSIONS):
            await self.client.script_load(source)
        self._scripts_loaded = True

    async def _run(self, calls: list[tuple[Any, ...]]) -> list[Any]:
        """Send the calls in one pipeline; a call that met NOSCRIPT (a node that joined
        or flushed its scripts) is sent again, alone, after loading them everywhere."""
        if not self._scripts_loaded:
            await self._load_scripts()
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for i in todo:
                pipe.execute_command(*calls[i])
            got = await pipe.execute(raise_on_error=False)
            again = []
            for i, reply in zip(todo, got, strict=True):
                if isinstance(reply, NoScriptError) and attempt == 0:
                    again.append(i)
                replies[i] = reply
            if not again:
                break
            await self._load_scripts()
            todo = again
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    def write(
        self, keys: list[str], size: int, ttl_ms: str, records: bytes, started: bytes
    ) -> asyncio.Future[list[int]]:
        return asyncio.ensure_future(self._write(keys, size, ttl_ms, records, started))

    async def _write(
        self, keys: list[str], size: int, ttl_ms: str, records: bytes, started: bytes
    ) -> list[int]:
        groups = by_slot(keys)
        calls = [
            ("EVALSHA", WRITE_SHA, len(group), *(keys[p] for p in group), size, ttl_ms,
             _slices(records, group, size), _slices(started, group, 8))
            for group in groups
        ]  # fmt: skip
        replies = await self._run(calls)
        # Each call answers the 1-based positions it did not write, within its group.
        return [group[int(pos) - 1] + 1 for group, lost in zip(groups, replies, strict=True)
                for pos in lost]  # fmt: skip

    async def versions(self, keys: list[str]) -> list[bytes]:
        groups = by_slot(keys)
        calls = [("EVALSHA", VERSIONS_SHA, len(g), *(keys[p] for p in g)) for g in groups]
        out: list[bytes] = [b""] * len(keys)
        for group, reply in zip(groups, await self._run(calls), strict=True):
            for pos, raw in zip(group, reply, strict=True):
                out[pos] = raw
        return out

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        # One MGET per slot, pipelined per node by redis-py.
        return list(await self.client.mget_nonatomic(keys))

    async def delete(self, key: str) -> int:
        return int(await self.client.delete(key))

    async def ping(self) -> bool:
        return await self.health.probe(self.client.ping())

    async def close(self) -> None:
        await self.client.aclose()


def _slices(data: bytes, positions: Iterable[int], width: int) -> bytes:
    return b"".join(data[p * width : (p + 1) * width] for p in positions)
