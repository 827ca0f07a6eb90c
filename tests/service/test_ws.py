"""WS /v1/models/{model}/stream through a real server with the websockets client."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import websockets
from svc_helpers import SENSOR, LiveServer, held_out, obs_body
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


def test_ws_answers_of_one_stream_keep_order_across_multi_messages(server: LiveServer) -> None:
    """m0: B with a long history (slow); m1: {A, B} (A free, B queued behind m0);
    m2: A's next. A's answers must come back m1 then m2, though m1 also waits for B."""
    t0 = 1401580800  # 2014-06-01T00:00:00Z
    n = 5000
    history = [
        {"ts": t0 - (n - k) * 1800, "values": [4000.0 + (k % 48) * 10.0, 20.0]} for k in range(n)
    ]

    async def run() -> list[dict]:
        async with connect(f"{server.ws_url}/v1/models/{SENSOR}/stream") as ws:
            await ws.send(json.dumps({"stream_id": "B", "observations": history, "id": "m0"}))
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
            return [json.loads(await ws.recv()) for _ in range(4)]

    replies = asyncio.run(run())
    assert all("error" not in r for r in replies), replies
    order_a = [(r["id"], r["ts"]) for r in replies if r["stream_id"] == "A"]
    assert order_a == [("m1", "2014-06-01T00:00:00Z"), ("m2", "2014-06-01T00:30:00Z")]
    order_b = [r["id"] for r in replies if r["stream_id"] == "B"]
    assert order_b == ["m0", "m1"]


def test_ws_outbox_bounds_reading_and_slots_free_after_sending(monkeypatch) -> None:
    from service.transport import ws as ws_mod

    monkeypatch.setattr(ws_mod, "OUTBOX_MAX", 3)

    class FakeSocket:
        def __init__(self) -> None:
            self.sent: list[str] = []
            self.release = asyncio.Event()

        async def send_text(self, text: str) -> None:
            await self.release.wait()  # a client that does not read yet
            self.sent.append(text)

    async def run() -> None:
        outbox = ws_mod.Outbox()
        gate = asyncio.Semaphore(1)
        await gate.acquire()  # one message in flight
        sock = FakeSocket()
        sender = asyncio.ensure_future(ws_mod._send_loop(sock, outbox))  # type: ignore[arg-type]
        for k in range(3):
            outbox.put(f"{k}".encode())
        outbox.done(gate)  # the message's answers are all queued...
        await asyncio.sleep(0.01)
        assert not outbox.room.is_set()  # ...the reader must wait: the outbox is full
        assert gate.locked()  # and the slot stays taken until they are sent
        sock.release.set()
        await asyncio.wait_for(gate.acquire(), 2)  # freed by the sender after sending
        assert sock.sent == ["0", "1", "2"] and outbox.room.is_set()
        outbox.close()
        gate2 = asyncio.Semaphore(0)
        outbox.done(gate2)  # writer gone: slots are freed at once
        assert not gate2.locked()
        sender.cancel()

    asyncio.run(run())
