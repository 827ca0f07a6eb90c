from __future__ import annotations

import asyncio

from service.engine.locks import StreamLocks


def test_fifo_per_stream_and_free_when_idle() -> None:
    async def run() -> list[int]:
        locks = StreamLocks()
        order: list[int] = []

        async def worker(k: int) -> None:
            await locks.acquire("s")
            try:
                await asyncio.sleep(0)
                order.append(k)
            finally:
                locks.release("s")

        await asyncio.gather(*(worker(k) for k in range(10)))
        assert not locks.busy("s") and locks.enqueue("s") is None  # free again
        return order

    assert asyncio.run(run()) == list(range(10))


def test_cancelled_waiter_does_not_block_the_stream() -> None:
    async def run() -> bool:
        locks = StreamLocks()
        assert locks.enqueue("s") is None  # taken at once
        waiter = asyncio.ensure_future(locks.acquire("s"))
        await asyncio.sleep(0)
        waiter.cancel()
        await asyncio.sleep(0)
        locks.release("s")
        return locks.enqueue("s") is None

    assert asyncio.run(run())
