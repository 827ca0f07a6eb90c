"""The API keys file reloaded by a real `python -m service` process: on SIGHUP, and on a
change of the file. Outcomes are polled (bounded), never waited for by a fixed sleep."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

import httpx
from proc_helpers import ServiceProcess


def _write(path: Path, *keys: str) -> None:
    lines = [f"{hashlib.sha256(k.encode()).hexdigest()} scopes=read name={k}\n" for k in keys]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)  # as an operator (or a Secret mount) replaces it: whole


def _status(url: str, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.get(f"{url}/v1/models", headers=headers, timeout=10).status_code


def _until(check: object, what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.05)


def _service(models_dir: Path, tmp_path: Path, keys: Path, reload_seconds: str) -> ServiceProcess:
    return ServiceProcess(
        models_dir,
        tmp_path / "service.log",
        FORECAST_AUTH_DISABLED="false",
        FORECAST_API_KEYS_FILE=str(keys),
        FORECAST_KEYS_RELOAD_SECONDS=reload_seconds,
    )


def test_sighup_reloads_the_keys_file(models_dir: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    _write(keys, "old-key")
    # The file is checked for changes only once an hour: only SIGHUP can reload it here.
    service = _service(models_dir, tmp_path, keys, "3600").start()
    try:
        assert service.proc is not None
        assert _status(service.url, "old-key") == 200
        assert _status(service.url, "new-key") == 401
        _write(keys, "new-key")  # old-key removed
        assert _status(service.url, "new-key") == 401  # not reloaded yet: no signal
        os.kill(service.proc.pid, signal.SIGHUP)
        _until(lambda: _status(service.url, "new-key") == 200, "the new key accepted")
        r = httpx.get(f"{service.url}/v1/models", headers={"Authorization": "Bearer old-key"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_key"
        assert service.proc.poll() is None  # SIGHUP did not end the process
        assert httpx.get(f"{service.url}/healthz").status_code == 200
    finally:
        service.stop()


def test_a_changed_keys_file_is_reloaded_without_a_signal(models_dir: Path, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    _write(keys, "old-key")
    service = _service(models_dir, tmp_path, keys, "0.05").start()
    try:
        assert _status(service.url, "old-key") == 200
        _write(keys, "new-key", "other-key")
        _until(lambda: _status(service.url, "new-key") == 200, "the new key accepted")
        assert _status(service.url, "old-key") == 401
    finally:
        service.stop()
