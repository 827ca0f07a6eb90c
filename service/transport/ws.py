"""WS /v1/models/{model}/stream: observations of any number of streams, forecasts back.

Client messages (text JSON; answered by DataPlane.ws_message), either one stream
    {"stream_id": "a", "observations": [...], "reset": false, "id": <anything>}
or many
    {"streams": [{"stream_id": "a", "observations": [...]}, ...], "id": <anything>}
Server messages: one per stream, the same body as the HTTP stream endpoint, or
{"stream_id": "a", "error": {...}}; "id" is echoed when given.

Each message gets its own task so streams proceed concurrently, but a task joins its
streams' lock queues before the next message is read, so forecasts of one stream come
back in the order its observations were sent. A semaphore bounds messages in flight;
a message counts until its last answer has been SENT (not merely computed), and the
next message is not read while the outbox holds OUTBOX_MAX answers or more, so a client
that does not read its answers stalls itself instead of growing the server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from service.dataplane import DataPlane
from service.errors import ServiceError, render
from service.protocol.answers import dumps
from service.transport.routes import WS_ROUTE

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 256
OUTBOX_MAX = 1024  # answers waiting to be sent before the next message is read

# Outbox entries: (answer, None), or (None, gate) once all of one message's answers are
# queued (the send loop then releases that message's slot), or (None, None) to stop.
Entry = tuple[bytes | None, asyncio.Semaphore | None]


class Outbox:
    """Answers waiting for the one writer; puts never block (they come from callbacks
    that must not await), the reader waits for room instead."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Entry] = asyncio.Queue()
        self.room = asyncio.Event()
        self.room.set()
        self.closed = False  # the writer stopped (client gone): release, don't queue

    def put(self, data: bytes) -> None:
        if self.closed:
            return  # nobody will send it
        self.queue.put_nowait((data, None))
        if self.queue.qsize() >= OUTBOX_MAX:
            self.room.clear()

    def done(self, gate: asyncio.Semaphore) -> None:
        if self.closed:
            gate.release()
        else:
            self.queue.put_nowait((None, gate))

    def close(self) -> None:
        """The writer is gone: free every slot still waiting on it, and the reader."""
        self.closed = True
        while not self.queue.empty():
            _, gate = self.queue.get_nowait()
            if gate is not None:
                gate.release()
        self.room.set()


def add_ws_route(app: FastAPI, dataplane: DataPlane, max_bytes: int) -> None:
    @app.websocket(WS_ROUTE)
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            model = dataplane.model(websocket.path_params["model"])
        except ServiceError as exc:
            await websocket.send_bytes(dumps(render(exc)[1]))
            await websocket.close(code=1008)
            return
        outbox = Outbox()
        gate = asyncio.Semaphore(MAX_IN_FLIGHT)
        sender = asyncio.ensure_future(_send_loop(websocket, outbox))
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                raw = text.encode() if text is not None else message.get("bytes") or b""
                await outbox.room.wait()  # the client reads its answers, or waits
                await gate.acquire()  # released by the sender once the answers are out
                task = asyncio.ensure_future(
                    dataplane.ws_message(model, raw, max_bytes, lambda b: outbox.put(dumps(b)))
                )
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(lambda _: outbox.done(gate))
        except WebSocketDisconnect:
            pass
        finally:
            # In-flight messages still commit (the client may retry them: exactly once).
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender


async def _send_loop(websocket: WebSocket, outbox: Outbox) -> None:
    # One writer: concurrent sends on one socket would interleave frames.
    queue = outbox.queue
    try:
        while True:
            data, gate = await queue.get()
            if data is None:
                if gate is None:
                    return
                gate.release()  # every answer of that message has been sent
                continue
            await websocket.send_text(data.decode())
            if queue.qsize() < OUTBOX_MAX:
                outbox.room.set()
    except (WebSocketDisconnect, RuntimeError):
        outbox.close()  # the client went away: nothing left to tell it
