"""python -m service as a real process: starts, serves, snapshots on SIGTERM."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from svc_helpers import SENSOR

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(models_dir: Path, snapshot: str, **settings: str) -> tuple[subprocess.Popen, int]:
    """`python -m service` on a free port; returns once /readyz answers 200.
    Authentication is on by default: without an api_keys_file setting it is disabled."""
    port = _free_port()
    if "api_keys_file" not in settings:
        settings = {"auth_disabled": "true", **settings}
    env = {
        **os.environ,
        "FORECAST_PORT": str(port),
        "FORECAST_MODELS_DIR": str(models_dir),
        "FORECAST_SNAPSHOT_PATH": snapshot,
        "FORECAST_LOG_LEVEL": "warning",
        **{f"FORECAST_{k.upper()}": v for k, v in settings.items()},
    }
    proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            raise AssertionError("python -m service did not become ready")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_python_m_service(models_dir: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{hashlib.sha256(b'main-key').hexdigest()} scopes=write name=main\n")
    proc, port = _start(models_dir, str(tmp_path / "snap.npz"), api_keys_file=str(keys))
    try:
        url = f"http://127.0.0.1:{port}/v1/models/{SENSOR}/streams/p/observations"
        body = {"observations": [{"ts": "2014-12-28T00:00:00", "values": [4000.0, 20.0]}]}
        assert httpx.post(url, json=body).status_code == 401  # authentication is on by default
        r = httpx.post(url, json=body, headers={"Authorization": "Bearer main-key"})
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal after its graceful shutdown, hence -SIGTERM.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        _stop(proc)
    assert (tmp_path / "snap.npz").stat().st_size > 0


def test_forwarded_headers_are_trusted_only_when_proxy_headers_is_on(models_dir: Path) -> None:
    """Through the real uvicorn that `python -m service` starts: a request from a proxy
    (127.0.0.1, uvicorn's trusted default) saying X-Forwarded-Proto: https. The scheme
    the app sees shows in the Location of the router's trailing-slash redirect."""
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    started = [_start(models_dir, ""), _start(models_dir, "", proxy_headers="true")]
    try:
        locations = []
        for _, port in started:
            r = httpx.get(f"http://127.0.0.1:{port}/v1/models/", headers=headers)
            assert r.status_code == 307
            locations.append(r.headers["location"])
    finally:
        for proc, _ in started:
            _stop(proc)
    (_, off), (_, on) = started
    assert locations == [
        f"http://127.0.0.1:{off}/v1/models",  # default: the header is ignored
        f"https://127.0.0.1:{on}/v1/models",
    ]


def test_invalid_settings_exit_with_a_message(tmp_path: Path) -> None:
    env = {**os.environ, "FORECAST_PORT": "not-a-port"}
    out = subprocess.run(
        [sys.executable, "-m", "service"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 2 and "port" in out.stderr


def test_websocket_message_over_max_body_bytes_closes_with_1009(models_dir: Path) -> None:
    """FORECAST_MAX_BODY_BYTES bounds a WebSocket message too: uvicorn (as started by
    `python -m service`) closes the connection with 1009 before the app reads it."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    proc, port = _start(models_dir, "", max_body_bytes="2048")
    ok = {"stream_id": "a", "observations": [{"ts": 1401580800, "values": [4000.0, 20.0]}]}
    try:
        with connect(f"ws://127.0.0.1:{port}/v1/models/{SENSOR}/stream") as ws:
            ws.send(json.dumps(ok))
            assert json.loads(ws.recv(timeout=30))["stream_id"] == "a"
            ws.send(json.dumps({**ok, "pad": "x" * 2100}))
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=30)
            assert ws.protocol.close_code == 1009  # message too big
        count = httpx.get(f"http://127.0.0.1:{port}/v1/models/{SENSOR}/streams/a").json()["count"]
        assert count == 1
    finally:
        _stop(proc)


def test_a_keys_file_that_does_not_parse_exits_with_a_message(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("not-a-hash scopes=read\n")
    env = {**os.environ, "FORECAST_API_KEYS_FILE": str(keys)}
    out = subprocess.run(
        [sys.executable, "-m", "service"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 2 and "line 1" in out.stderr and "sha256" in out.stderr
