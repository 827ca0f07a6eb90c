"""WS /v1/models/{model}/stream through a real server with the websockets client."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import types
from pathlib import Path

import httpx
import numpy as np
import pytest
import websockets
from svc_helpers import SENSOR, LiveServer, RuntimeGate, held_out, obs_body, wait_until
from websockets.asyncio.client import connect


def test_ws_many_streams_in_order_and_equal_to_http(
    models_dir: Path, server: LiveServer, serve
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 20)
    sids = ["w0", "w1", "w2"]

    async def run() -> list[dict]:
        async with connect(f"{server.ws_url}/v1/models/{SENSOR}/stream") as ws:
            # Send everything without waiting: streams interleave on one connection.
            for i in range(20):
                for k, sid in enumerate(sids):
                    msg = {
                        "stream_id": sid,
                        "observations": [obs_body(seconds[i], values[i] + k, i)],
                    }
                    await ws.send(json.dumps({**msg, "id": f"{sid}-{i}"}))
            await ws.send(json.dumps({"streams": [
                {"stream_id": "w0", "observations": [obs_body(seconds[19], values[19], 19)]},
                {"stream_id": "w9", "observations": [{"ts": "bad", "values": [1, 2]}]},
            ], "id": "multi"}))  # fmt: skip
            await ws.send("{not json")
            return [json.loads(await ws.recv()) for _ in range(60 + 2 + 1)]

    replies = asyncio.run(run())
    per_stream: dict[str, list[int]] = {sid: [] for sid in sids}
    last: dict[str, dict] = {}
    for r in replies:
        if r.get("id") in (None, "multi"):
            continue
        per_stream[r["stream_id"]].append(r["seq"])
        assert r["id"] == f"{r['stream_id']}-{r['seq']}"
        last[r["stream_id"]] = r
    for sid in sids:
        assert per_stream[sid] == list(range(20))  # in order per stream
    multi = [r for r in replies if r.get("id") == "multi"]
    assert {m["stream_id"] for m in multi} == {"w0", "w9"}
    dup = next(m for m in multi if m["stream_id"] == "w0")
    assert dup["duplicate"] is True and dup["forecast"] == last["w0"]["forecast"]
    assert next(m for m in multi if m["stream_id"] == "w9")["error"]["code"] == "invalid_input"
    assert any(r.get("error", {}).get("code") == "malformed_json" for r in replies)
    # Same as over HTTP on a fresh server.
    reference = serve(snapshot_path="")
    with httpx.Client(base_url=reference.url) as c:
        for i in range(20):
            r = c.post(
                f"/v1/models/{SENSOR}/streams/w1/observations",
                json={"observations": [obs_body(seconds[i], values[i] + 1, i)]},
            ).json()
    np.testing.assert_allclose(last["w1"]["forecast"]["values"], r["forecast"]["values"], rtol=1e-5)


def test_ws_unknown_model_closes_with_error(server: LiveServer) -> None:
    async def run() -> tuple[dict, int | None]:
        async with connect(f"{server.ws_url}/v1/models/nope/stream") as ws:
            first = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return first, ws.close_code

    first, code = asyncio.run(run())
    assert first["error"]["code"] == "model_not_found"
    assert code == 1008


def test_ws_answers_of_one_stream_keep_order_across_multi_messages(models_dir: Path, serve) -> None:
    """m0: B with a history whose ORT call the test holds (an injected gate); m1: {A, B};
    m2: A's next. Only once the server holds m1 queued behind m0 on B and m2 queued
    behind m1 on A is the gate released: A must answer m1 then m2, B m0 then m1."""
    server = serve()
    model = server.service.models[SENSOR]
    t0 = 1401580800  # 2014-06-01T00:00:00Z
    n = 50  # a history: one sequence call (T=50) on the worker thread, where it is held
    history = [
        {"ts": t0 - (n - k) * 1800, "values": [4000.0 + (k % 48) * 10.0, 20.0]} for k in range(n)
    ]
    gate = RuntimeGate(model.runtime, holds=lambda x: x.shape[1] > 1)

    def waiting(sid: str) -> int:
        # Requests queued on a stream's FIFO lock behind the one that holds it.
        return len(model.locks._busy.get(sid) or ())

    async def run() -> list[dict]:
        async with connect(f"{server.ws_url}/v1/models/{SENSOR}/stream") as ws:
            await ws.send(json.dumps({"stream_id": "B", "observations": history, "id": "m0"}))
            await asyncio.to_thread(gate.entered.wait, 30)
            m1 = {
                "streams": [
                    {"stream_id": "A", "observations": [{"ts": t0, "values": [4000.0, 20.0]}]},
                    {"stream_id": "B", "observations": [{"ts": t0, "values": [4000.0, 20.0]}]},
                ],
                "id": "m1",
            }
            await ws.send(json.dumps(m1))
            m2 = {"stream_id": "A", "observations": [{"ts": t0 + 1800, "values": [4001.0, 20.0]}]}
            await ws.send(json.dumps({**m2, "id": "m2"}))
            await asyncio.to_thread(
                wait_until,
                lambda: server.call(lambda: (waiting("A"), waiting("B"))) == (1, 1),
                "m1 queued behind m0 on B, m2 behind m1 on A",
            )
            gate.restore()
            return [json.loads(await ws.recv()) for _ in range(4)]

    replies = asyncio.run(run())
    assert all("error" not in r for r in replies), replies
    order_a = [(r["id"], r["ts"]) for r in replies if r["stream_id"] == "A"]
    assert order_a == [("m1", "2014-06-01T00:00:00Z"), ("m2", "2014-06-01T00:30:00Z")]
    assert [r["id"] for r in replies if r["stream_id"] == "B"] == ["m0", "m1"]


def test_ws_client_that_stops_reading_stalls_only_itself(
    monkeypatch: pytest.MonkeyPatch, serve
) -> None:
    """A real client on a real socket sends observations and reads nothing. Once its
    answers fill the socket, the server stops reading that connection (uvicorn's
    transport paused, the app waiting for the outbox or for in-flight slots) holding at
    most OUTBOX_MAX + MAX_IN_FLIGHT answers; another connection is served meanwhile;
    once the client reads, every observation is answered in order, exactly once."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.client import ClientProtocol
    from websockets.frames import Frame, Opcode
    from websockets.http11 import Response
    from websockets.sync.client import connect as sync_connect
    from websockets.uri import parse_uri

    from service.transport import ws as ws_mod

    monkeypatch.setattr(ws_mod, "OUTBOX_MAX", 4)
    monkeypatch.setattr(ws_mod, "MAX_IN_FLIGHT", 16)
    boxes: list[ws_mod.Outbox] = []
    gates: list[asyncio.Semaphore] = []

    class WatchedOutbox(ws_mod.Outbox):
        def __init__(self) -> None:
            super().__init__()
            boxes.append(self)

    class WatchedSemaphore(asyncio.Semaphore):
        def __init__(self, value: int = 1) -> None:
            super().__init__(value)
            gates.append(self)

    # The module's own view of asyncio, with the in-flight gate watched; nothing else.
    monkeypatch.setattr(
        ws_mod, "asyncio", types.SimpleNamespace(**{**vars(asyncio), "Semaphore": WatchedSemaphore})
    )
    monkeypatch.setattr(ws_mod, "Outbox", WatchedOutbox)
    server = serve()
    # Small kernel buffers on both ends (accepted sockets inherit the listener's), so a
    # few hundred unread answers fill them.
    server.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    url = f"{server.ws_url}/v1/models/{SENSOR}/stream"
    proto = ClientProtocol(parse_uri(url))
    proto.send_request(proto.connect())
    sock.sendall(b"".join(proto.data_to_send()))
    while not any(isinstance(e, Response) for e in proto.events_received()):
        proto.receive_data(sock.recv(65536))
    t0, frames = 1401580800, []
    for i in range(20_000):
        obs = {"ts": t0 + 1800 * i, "seq": i, "values": [4000.0 + i % 7, 20.0]}
        proto.send_text(json.dumps({"stream_id": "bp", "observations": [obs]}).encode())
        frames.append(b"".join(proto.data_to_send()))
    stop, sent = threading.Event(), [0]

    def send_all() -> None:
        for frame in frames:
            if stop.is_set():
                return
            sock.sendall(frame)  # blocks once the server stops reading
            sent[0] += 1

    def stalled() -> tuple[bool, bool, int, int] | None:
        """None until nothing on the server can move this connection any more: its
        writer waits for the socket to drain (which needs the client to read) and its
        reader waits for outbox room or in-flight slots (which only the writer frees)."""
        conns = server.server.server_state.connections
        (conn,) = [c for c in conns if isinstance(c, WebSocketsSansIOProtocol)]
        box, gate = boxes[0], gates[0]  # the stalled connection's (the first one)
        if conn.writable.is_set() or not (gate.locked() or not box.room.is_set()):
            return None
        answers = sum(1 for data, _ in box.queue._queue if data is not None)  # type: ignore[attr-defined]
        return conn.read_paused, conn.transport.is_reading(), conn.queue.qsize(), answers

    sender = threading.Thread(target=send_all)
    sender.start()
    seqs: list[int] = []
    try:
        wait_until(lambda: server.call(stalled) is not None, "the connection stalls", 60)
        paused, reading, parsed, held = server.call(stalled)
        assert paused and not reading  # no more bytes are taken from this client
        # uvicorn parses what one socket read brought (uvloop reads at most 256 KiB) and
        # then stops reading until the app has taken all of it.
        assert parsed * min(len(f) for f in frames) <= 256 * 1024
        assert held <= ws_mod.OUTBOX_MAX + ws_mod.MAX_IN_FLIGHT  # the app's bound
        applied = server.call(lambda: server.service.models[SENSOR].store.count.sum())
        # Another connection is served while this one is stalled.
        with sync_connect(url) as other:
            other.send(
                json.dumps({"stream_id": "x", "observations": [{"ts": t0, "values": [1.0, 2.0]}]})
            )
            assert json.loads(other.recv(timeout=30))["stream_id"] == "x"
        assert server.call(stalled) is not None  # still stalled
        # Only the messages in flight at the stall (at most MAX_IN_FLIGHT) still applied.
        now = server.call(lambda: server.service.models[SENSOR].store.count.sum())
        assert now <= applied + ws_mod.MAX_IN_FLIGHT + 1
    finally:
        stop.set()
        while sender.is_alive() or len(seqs) < sent[0]:
            readable, _, _ = select.select([sock], [], [], 30)
            data = sock.recv(65536) if readable else b""
            assert data, f"answers stopped at {len(seqs)} of {sent[0]}"
            proto.receive_data(data)
            for event in proto.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    seqs.append(json.loads(event.data)["seq"])
        sender.join()
        sock.close()
    assert seqs == list(range(sent[0])) and sent[0] > applied
    with httpx.Client(base_url=server.url) as c:
        assert c.get(f"/v1/models/{SENSOR}/streams/bp").json()["count"] == sent[0]
