"""Request hygiene: safe stream ids, bounded echoes and caches, connection limits."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import websockets
from svc_helpers import SENSOR, LiveServer, held_out, iso, obs_body

from service.protocol import timestamps
from service.protocol.timestamps import MAX_TS_CHARS, parse_ts

MANY = f"/v1/models/{SENSOR}/observations"


@pytest.mark.parametrize("sid", ["a/b", "a b", "é", "a%2Fb", "x" * 129, "a\\b"])
def test_stream_ids_outside_the_safe_set_are_refused_everywhere(
    server: LiveServer, client: httpx.Client, models_dir: Path, sid: str
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 1)
    obs = [obs_body(seconds[0], values[0])]
    r = client.post(MANY, json={"streams": [{"stream_id": sid, "observations": obs}]})
    entry = r.json()["results"][0]
    assert entry["status"] == 422 and entry["stream_id"] is None  # not echoed
    assert "A-Z a-z 0-9" in entry["error"]["message"] or "128" in entry["error"]["message"]
    assert sid not in r.text  # nor quoted in the message

    async def ws() -> dict:
        async with websockets.connect(f"{server.ws_url}/v1/models/{SENSOR}/stream") as conn:
            await conn.send(json.dumps({"stream_id": sid, "observations": obs}))
            return json.loads(await conn.recv())

    assert asyncio.run(ws())["status"] == 422
    assert server.service.models[SENSOR].store.lookup(sid) is None


def test_path_stream_ids_are_checked_too(client: httpx.Client, models_dir: Path) -> None:
    seconds, values = held_out(models_dir, SENSOR, 1)
    body = {"observations": [obs_body(seconds[0], values[0])]}
    r = client.post(f"/v1/models/{SENSOR}/streams/%C3%A9/observations", json=body)
    assert r.status_code == 422
    good = "Sensor_1.a:b~c-d"
    assert (
        client.post(f"/v1/models/{SENSOR}/streams/{good}/observations", json=body).status_code
        == 200
    )
    assert client.get(f"/v1/models/{SENSOR}/streams/{good}").status_code == 200
    assert client.delete(f"/v1/models/{SENSOR}/streams/{good}").status_code == 200


def test_echoed_strings_are_bounded(
    server: LiveServer, client: httpx.Client, models_dir: Path
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 1)
    big = "k" * 100_000
    r = client.post(
        f"/v1/models/{SENSOR}/streams/e/observations", json={"observations": [], big: 1}
    )
    assert r.status_code == 422 and len(r.content) < 1000
    r = client.post(MANY, json={"streams": [{"stream_id": big, "observations": []}]})
    assert len(r.content) < 1000
    obs = {"ts": iso(seconds[0]), "values": [float(v) for v in values[0]], big: 1}
    r = client.post(MANY, json={"streams": [{"stream_id": "e", "observations": [obs]}]})
    assert len(r.content) < 1000

    async def ws() -> list[dict]:
        async with websockets.connect(f"{server.ws_url}/v1/models/{SENSOR}/stream") as conn:
            ok = {"stream_id": "w", "observations": [obs_body(seconds[0], values[0])]}
            await conn.send(json.dumps({**ok, "id": "i" * 129}))
            await conn.send(json.dumps({**ok, "id": "short"}))
            return [json.loads(await conn.recv()) for _ in range(2)]

    long_id, short_id = asyncio.run(ws())
    assert long_id["status"] == 422 and "id" not in long_id  # refused, not echoed
    assert short_id["id"] == "short"


def test_ts_strings_are_bounded_before_parsing_and_the_cache_in_bytes() -> None:
    with pytest.raises(ValueError, match="longer than"):
        parse_ts("2014-06-01T00:00:00." + "1" * MAX_TS_CHARS)
    before = timestamps.iso_cache_bytes()
    for k in range(50_000):  # far more distinct valid strings than the byte budget holds
        parse_ts(f"2014-06-01T00:00:00.{k:06d}")
    assert timestamps.iso_cache_bytes() <= timestamps.ISO_CACHE_BYTES
    assert timestamps.iso_cache_bytes() != before
    assert parse_ts("2014-06-01T00:00:00.000001") == 1401580800.000001


def _connect(server: LiveServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(30)
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_slow_and_oversized_request_heads_are_cut_off(serve: Callable[..., LiveServer]) -> None:
    server = serve(read_timeout_seconds=0.2, max_header_bytes=2048)
    idle = _connect(server)  # sends nothing at all
    half = _connect(server)
    half.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")  # never finishes
    assert _read_all(idle) == b"" and _read_all(half) == b""  # closed by the server
    big = _connect(server)
    big.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Pad: " + b"p" * 4096 + b"\r\n\r\n")
    assert _read_all(big).startswith(b"HTTP/1.1 431")
    bad = _connect(server)
    bad.sendall(b"NOT HTTP AT ALL\r\n\r\n")
    assert _read_all(bad).startswith(b"HTTP/1.1 400")
    with httpx.Client(base_url=server.url) as c:  # a normal request still works
        assert c.get("/healthz").status_code == 200
        text = c.get("/metrics").text
    for reason in ("read_timeout", "header_too_large", "bad_request"):
        line = next(x for x in text.splitlines() if f'refusals_total{{reason="{reason}"}}' in x)
        assert float(line.split()[-1]) >= 1
    for sock in (idle, half, big, bad):
        sock.close()


def test_allowed_hosts_and_cors_settings(serve: Callable[..., LiveServer]) -> None:
    server = serve(
        allowed_hosts="api.example.com,.internal", cors_origins="https://app.example.com"
    )
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/healthz").status_code == 400  # 127.0.0.1 is not in the list
        assert c.get("/healthz", headers={"Host": "api.example.com"}).status_code == 200
        assert c.get("/healthz", headers={"Host": "a.b.internal:80"}).status_code == 200
        assert c.get("/healthz", headers={"Host": "evilinternal"}).status_code == 400
        preflight = c.options(
            MANY,
            headers={
                "Host": "api.example.com",
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"


def test_cors_is_off_by_default(client: httpx.Client) -> None:
    preflight = client.options(
        MANY, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 405 and "access-control-allow-origin" not in preflight.headers
