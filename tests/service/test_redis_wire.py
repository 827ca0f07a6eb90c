"""The pipelined RESP connection against a real redis-server: replies reach their own
command in order, AUTH and SELECT from the URL, an error reply fails only its command,
a hung server fails everything in flight within the timeout, and the next call
reconnects (and reloads the scripts)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from redis_helpers import RedisServer

from service.engine.redis_wire import ReplyError, Wire

SCRIPT = b"return KEYS[1] .. ARGV[1]"
SHA = hashlib.sha1(SCRIPT).hexdigest()


def test_pipelined_calls_answer_in_order_with_auth_and_db(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "r")
    server.password = "s3cret"
    server.start()
    try:

        async def run() -> list:
            wire = Wire(f"redis://:s3cret@127.0.0.1:{server.port}/3", timeout=5)
            wire.scripts = [SCRIPT]
            calls = [wire.call("SET", f"k{i}", f"v{i}") for i in range(50)]
            calls += [wire.call("GET", f"k{i}") for i in range(50)]
            calls.append(wire.call("EVALSHA", SHA, 1, "a", "b"))  # loaded at connect
            bad = wire.call("INCR", "k0")  # not an integer: an error reply, for it alone
            after = wire.call("GET", "k49")
            out = await asyncio.gather(*calls)
            with pytest.raises(ReplyError):
                await bad
            out.append(await after)
            await wire.close()
            return out

        out = asyncio.run(run())
        assert out[50:100] == [f"v{i}".encode() for i in range(50)]
        assert out[100] == b"ab" and out[101] == b"v49"
        with server.client() as admin:
            assert admin.get("k7") is None  # not in db 0...
            admin.execute_command("SELECT", 3)
            assert admin.get("k7") == b"v7"  # ...but in the URL's db
    finally:
        server.stop()


def test_a_hung_server_fails_everything_in_flight_then_the_wire_reconnects(
    redis_server: RedisServer,
) -> None:
    async def run() -> None:
        wire = Wire(redis_server.url, timeout=0.3)
        wire.scripts = [SCRIPT]
        assert await wire.call("PING") == b"PONG"
        redis_server.pause()
        pending = [wire.call("SET", "x", str(i)) for i in range(3)]
        results = await asyncio.gather(*pending, return_exceptions=True)
        assert all(isinstance(r, TimeoutError) for r in results), results
        redis_server.resume()
        redis_server.stop()
        with pytest.raises(ConnectionError):  # refused: fails at once, no hang
            await wire.call("PING")
        redis_server.start()  # a new process: its script cache is empty
        assert await wire.call("EVALSHA", SHA, 1, "p", "q") == b"pq"
        await wire.close()

    asyncio.run(run())
