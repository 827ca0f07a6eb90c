"""WS /v1/models/{model}/stream: observations of any number of streams, forecasts back.

Client messages (text JSON), either one stream
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
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from service.api.handlers import check_detail, parse_entries, shape_result
from service.api.responses import dumps, error_body
from service.core import ForecastService
from service.errors import InvalidInput, PayloadTooLarge, ServiceError
from service.parsing import check_reset, check_stream_id, load_json, parse_observations
from service.streams import ModelStreams

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


def build_ws_router(svc: ForecastService) -> APIRouter:
    router = APIRouter()
    max_history = svc.settings.max_history
    max_bytes = svc.settings.max_body_bytes

    @router.websocket("/v1/models/{model}/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            model = svc.model(websocket.path_params["model"])
        except ServiceError as exc:
            await websocket.send_bytes(dumps(error_body(exc)))
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
                task = asyncio.ensure_future(_handle(model, raw, outbox, max_history, max_bytes))
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

    return router


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


async def _handle(
    model: ModelStreams,
    raw: bytes,
    outbox: Outbox,
    max_history: int,
    max_bytes: int,
) -> None:
    ident: Any = None
    try:
        if len(raw) > max_bytes:
            raise PayloadTooLarge(f"message: larger than the limit of {max_bytes} bytes")
        data = load_json(raw)
        ident = data.get("id")
        if "streams" in data:
            for key in data:
                if key not in ("streams", "forecast", "id"):
                    raise InvalidInput(f"{key}: unknown field")
            detail = check_detail(data.get("forecast"))
            entries = parse_entries(data["streams"], model)

            def answer(i: int, result: dict[str, Any] | ServiceError) -> None:
                # Called while entry i's stream is still locked: per-stream order holds.
                body = shape_result(model, entries[i], result, detail)
                if ident is not None:
                    body["id"] = ident
                outbox.put(dumps(body))

            await model.observe_many(entries, detail, on_result=answer)
            return
        sid_raw = data.get("stream_id")
        for key in data:
            if key not in ("stream_id", "observations", "reset", "id"):
                raise InvalidInput(f"{key}: unknown field")
        stream_id = check_stream_id(sid_raw, "stream_id")
        obs = parse_observations(
            data.get("observations"), model.n_inputs, max_history, bounds=model.bounds
        )
        reset = check_reset(data.get("reset"), "reset")
        result = await model.observe(stream_id, obs, reset)
        if ident is not None:
            result["id"] = ident
        outbox.put(dumps(result))
    except Exception as exc:
        if not isinstance(exc, ServiceError):
            log.exception("unexpected error on a WebSocket message")
        body = {"status": getattr(exc, "status", 500), **error_body(exc)}
        if isinstance(data_sid := _sid_of(raw, exc), str):
            body["stream_id"] = data_sid
        if ident is not None:
            body["id"] = ident
        outbox.put(dumps(body))


def _sid_of(raw: bytes, exc: BaseException) -> str | None:
    # Name the stream in an error when the message was readable enough to say.
    try:
        data = load_json(raw)
    except ServiceError:
        return None
    sid = data.get("stream_id")
    return sid if isinstance(sid, str) else None
