"""API keys with scopes and tenant prefixes, over real HTTP and WebSocket."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import websockets
from svc_helpers import SENSOR, LiveServer, held_out, obs_body

from service.transport.auth import KeyStore, parse_keys

KEYS = {
    "reader": "scopes=read prefix=acme:",
    "acme": "scopes=read,write prefix=acme:",
    "globex": "scopes=read,write prefix=globex:",
    "admin": "scopes=admin",
    "acme-admin": "scopes=admin prefix=acme:",
    "scraper": "scopes=metrics",
}


def _line(key: str, fields: str) -> str:
    return f"{hashlib.sha256(key.encode()).hexdigest()} {fields} name={key}\n"


def _write_keys(path: Path, keys: dict[str, str]) -> Path:
    path.write_text("# test keys\n" + "".join(_line(k, f) for k, f in keys.items()))
    return path


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def secured(serve: Callable[..., LiveServer], tmp_path: Path) -> LiveServer:
    keys = _write_keys(tmp_path / "keys", KEYS)
    return serve(auth_disabled=False, api_keys_file=keys, keys_reload_seconds=0.001)


def _obs(models_dir: Path, k: int = 0, seq: int | None = None) -> dict:
    seconds, values = held_out(models_dir, SENSOR, k + 1)
    return {"observations": [obs_body(seconds[k], values[k], seq)]}


def test_no_key_401_unknown_key_401_wrong_scope_403(secured: LiveServer, models_dir: Path) -> None:
    url = f"/v1/models/{SENSOR}/streams/acme:s/observations"
    with httpx.Client(base_url=secured.url) as c:
        r = c.post(url, json=_obs(models_dir))
        assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["error"]["code"] == "missing_key"
        r = c.post(url, json=_obs(models_dir), headers=_auth("nope"))
        assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]
        r = c.post(url, json=_obs(models_dir), headers=_auth("reader"))  # read-only key
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_scope"
        assert (
            c.get(f"/v1/models/{SENSOR}/streams/acme:s", headers=_auth("acme")).status_code == 404
        )
        assert c.post(url, json=_obs(models_dir), headers={"X-API-Key": "acme"}).status_code == 200
        # Reads need the read scope; DELETE needs admin.
        assert c.get("/v1/models").status_code == 401
        assert c.get("/v1/models", headers=_auth("reader")).status_code == 200
        stream = f"/v1/models/{SENSOR}/streams/acme:s"
        assert c.delete(stream, headers=_auth("acme")).status_code == 403
        # The probes and the API description are open.
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        assert c.get("/openapi.json").status_code == 200
        # /metrics needs the metrics scope (or admin), not any key.
        assert c.get("/metrics", headers=_auth("acme")).status_code == 403
        text = c.get("/metrics", headers=_auth("scraper")).text
        assert c.delete(stream, headers=_auth("admin")).status_code == 200
    for reason, at_least in (("missing_key", 2), ("invalid_key", 1), ("forbidden_scope", 3)):
        line = next(x for x in text.splitlines() if f'reason="{reason}"' in x)
        assert float(line.split()[-1]) >= at_least
    assert "acme" not in "".join(x for x in text.splitlines() if "auth_failures" in x)


def test_a_key_touches_only_its_tenants_streams(secured: LiveServer, models_dir: Path) -> None:
    with httpx.Client(base_url=secured.url) as c:
        own = f"/v1/models/{SENSOR}/streams/acme:1/observations"
        other = f"/v1/models/{SENSOR}/streams/globex:1/observations"
        assert c.post(other, json=_obs(models_dir), headers=_auth("globex")).status_code == 200
        r = c.post(other, json=_obs(models_dir, 1), headers=_auth("acme"))
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_stream"
        path = f"/v1/models/{SENSOR}/streams/globex:1"
        for method, key in (("GET", "acme"), ("DELETE", "acme-admin")):
            r = c.request(method, path, headers=_auth(key))
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden_stream"
        assert c.post(own, json=_obs(models_dir), headers=_auth("acme")).status_code == 200
        # In a multi-stream request the foreign entry alone is refused.
        many = {
            "streams": [
                {"stream_id": "acme:2", **_obs(models_dir)},
                {"stream_id": "globex:2", **_obs(models_dir)},
            ]
        }
        r = c.post(f"/v1/models/{SENSOR}/observations", json=many, headers=_auth("acme"))
        assert [e.get("status", 200) for e in r.json()["results"]] == [200, 403]
        assert (
            c.get(f"/v1/models/{SENSOR}/streams/globex:2", headers=_auth("admin")).status_code
            == 404
        )
        # A reset needs admin.
        r = c.post(own, json={**_obs(models_dir, 2), "reset": True}, headers=_auth("acme"))
        assert r.status_code == 403
        status = c.get(f"/v1/models/{SENSOR}/streams/globex:1", headers=_auth("globex")).json()
        assert status["count"] == 1  # the other tenant's stream is untouched


def test_cross_site_text_plain_post_is_415_and_foreign_host_400(
    secured: LiveServer, models_dir: Path
) -> None:
    url = f"/v1/models/{SENSOR}/streams/acme:x/observations"
    body = json.dumps(_obs(models_dir)).encode()
    with httpx.Client(base_url=secured.url) as c:
        for path in (url, f"/v1/models/{SENSOR}/observations", f"/v1/models/{SENSOR}/forecast"):
            headers = {**_auth("admin"), "Content-Type": "text/plain", "Origin": "http://evil"}
            r = c.post(path, content=body, headers=headers)
            assert r.status_code == 415 and "Content-Type" in r.json()["error"]["message"], path
            assert "access-control-allow-origin" not in r.headers  # CORS is off
        r = c.delete(
            f"/v1/models/{SENSOR}/streams/acme:x",
            headers={**_auth("admin"), "Host": "attacker.example"},
        )
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_host"
        assert c.get("/healthz", headers={"Host": "attacker.example:8000"}).status_code == 400
        assert c.get("/healthz", headers={"Host": "localhost:1234"}).status_code == 200
        assert (
            c.get(f"/v1/models/{SENSOR}/streams/acme:x", headers=_auth("admin")).status_code == 404
        )


def test_websocket_authenticates_at_the_handshake(secured: LiveServer, models_dir: Path) -> None:
    url = f"{secured.ws_url}/v1/models/{SENSOR}/stream"

    async def run() -> list[dict]:
        for headers, status in (
            ({}, 401),
            (_auth("reader"), 403),
            ({**_auth("acme"), "Origin": "http://evil"}, 403),
        ):
            with pytest.raises(websockets.InvalidStatus) as info:
                async with websockets.connect(url, additional_headers=headers):
                    pass
            assert info.value.response.status_code == status
        async with websockets.connect(url, additional_headers=_auth("acme")) as ws:
            await ws.send(json.dumps({"stream_id": "acme:w", **_obs(models_dir), "id": 1}))
            await ws.send(json.dumps({"stream_id": "globex:w", **_obs(models_dir), "id": 2}))
            return [json.loads(await ws.recv()) for _ in range(2)]

    first, second = asyncio.run(run())
    assert first["id"] == 1 and "forecast" in first
    assert second["id"] == 2 and second["status"] == 403


def test_keys_reload_when_the_file_changes(secured: LiveServer, tmp_path: Path) -> None:
    with httpx.Client(base_url=secured.url) as c:
        assert c.get("/v1/models", headers=_auth("newkey")).status_code == 401
        _write_keys(tmp_path / "keys", {**KEYS, "newkey": "scopes=read"})
        assert c.get("/v1/models", headers=_auth("newkey")).status_code == 200
        (tmp_path / "keys").write_text("broken\n")  # a bad edit keeps the keys we had
        assert c.get("/v1/models", headers=_auth("newkey")).status_code == 200


def test_auth_is_on_by_default_and_without_keys_refuses_everything(
    serve: Callable[..., LiveServer],
) -> None:
    server = serve(auth_disabled=False)
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/v1/models", headers=_auth("anything")).status_code == 401
        assert c.get("/healthz").status_code == 200


def test_keys_file_format_errors_name_the_line() -> None:
    digest = "a" * 64
    assert (
        parse_keys(f"{digest} scopes=read,write prefix=t: max_streams=5\n")[digest].prefix == "t:"
    )
    for text, fragment in (
        ("zz scopes=read", "sha256"),
        (f"{digest}", "scopes"),
        (f"{digest} scopes=root", "scopes"),
        (f"{digest} scopes=read colour=red", "colour"),
        (f"{digest} scopes=read max_streams=x", "numbers"),
        (f"{digest} scopes=read\n{digest} scopes=write", "twice"),
    ):
        with pytest.raises(ValueError, match=fragment):
            parse_keys(f"# header\n{text}\n")
    with pytest.raises(ValueError, match="line 2"):
        parse_keys("# header\nzz scopes=read\n")


def test_key_store_refuses_oversized_keys(tmp_path: Path) -> None:
    store = KeyStore(_write_keys(tmp_path / "k", {"x" * 300: "scopes=read"}))
    assert store.lookup("x" * 300) is None  # bounded before it is hashed
    assert store.lookup("") is None
