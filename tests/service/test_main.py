"""python -m service as a real process: starts, serves, snapshots on SIGTERM."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from svc_helpers import SENSOR

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_python_m_service(models_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    keys = tmp_path / "keys"
    keys.write_text(f"{hashlib.sha256(b'main-key').hexdigest()} scopes=write name=main\n")
    env = {
        **os.environ,
        "FORECAST_PORT": str(port),
        "FORECAST_MODELS_DIR": str(models_dir),
        "FORECAST_SNAPSHOT_PATH": str(tmp_path / "snap.npz"),
        "FORECAST_LOG_LEVEL": "warning",
        "FORECAST_API_KEYS_FILE": str(keys),  # authentication is on by default
    }
    proc = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/v1/models/{SENSOR}/streams/p/observations"
        body = {"observations": [{"ts": "2014-12-28T00:00:00", "values": [4000.0, 20.0]}]}
        assert httpx.post(url, json=body).status_code == 401
        r = httpx.post(url, json=body, headers={"Authorization": "Bearer main-key"})
        assert r.status_code == 200
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal after its graceful shutdown, hence -SIGTERM.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "snap.npz").stat().st_size > 0


def test_invalid_settings_exit_with_a_message(tmp_path: Path) -> None:
    env = {**os.environ, "FORECAST_PORT": "not-a-port"}
    out = subprocess.run(
        [sys.executable, "-m", "service"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 2 and "port" in out.stderr


def test_a_keys_file_that_does_not_parse_exits_with_a_message(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("not-a-hash scopes=read\n")
    env = {**os.environ, "FORECAST_API_KEYS_FILE": str(keys)}
    out = subprocess.run(
        [sys.executable, "-m", "service"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 2 and "line 1" in out.stderr and "sha256" in out.stderr
