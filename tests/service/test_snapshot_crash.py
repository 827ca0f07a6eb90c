"""The memory backend's periodic snapshot: kill -9 loses at most the interval, and a
snapshot that cannot be read whole stops the start with an error naming the file."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from proc_helpers import ServiceProcess
from svc_helpers import SENSOR, held_out, manifest, obs_body

STREAM = f"/v1/models/{SENSOR}/streams/k/observations"


@pytest.fixture
def processes() -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    yield started
    for proc in started:
        proc.stop()


def saved_seq(path: Path, key: str, stream_id: str) -> int | None:
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as data:
        ids = orjson.loads(data[f"{key}|ids"].tobytes())
        if stream_id not in ids:
            return None
        return int(data[f"{key}|seq"][ids.index(stream_id)])


def test_kill_9_loses_at_most_what_came_after_the_last_periodic_snapshot(
    models_dir: Path, tmp_path: Path, processes: list[ServiceProcess]
) -> None:
    snap = tmp_path / "snap.npz"
    env = {"FORECAST_SNAPSHOT_PATH": str(snap), "FORECAST_SNAPSHOT_INTERVAL_SECONDS": "0.2"}
    first = ServiceProcess(models_dir, tmp_path / "svc.log", **env).start()
    processes.append(first)
    key = f"{SENSOR}|{manifest(models_dir, SENSOR)['version']}"
    seconds, values = held_out(models_dir, SENSOR, 12)
    with httpx.Client(base_url=first.url, timeout=30) as c:
        for i in range(10):
            body = {"observations": [obs_body(seconds[i], values[i], seq=i)]}
            assert c.post(STREAM, json=body).status_code == 200
    # No more traffic: the next periodic save holds everything acknowledged.
    deadline = time.monotonic() + 30
    while saved_seq(snap, key, "k") != 9:
        assert time.monotonic() < deadline, "no periodic snapshot was written"
        time.sleep(0.05)
    first.kill9()
    second = ServiceProcess(models_dir, tmp_path / "svc2.log", port=first.port, **env).start()
    processes.append(second)
    with httpx.Client(base_url=second.url, timeout=30) as c:
        status = c.get(f"/v1/models/{SENSOR}/streams/k").json()
        assert status["seq"] == 9 and status["count"] == 10
        body = {"observations": [obs_body(seconds[10], values[10], seq=10)]}
        r = c.post(STREAM, json=body)
        assert r.status_code == 200 and r.json()["duplicate"] is False


def test_a_corrupt_snapshot_stops_the_start_naming_the_file_unless_told_to_start_empty(
    models_dir: Path, tmp_path: Path, processes: list[ServiceProcess]
) -> None:
    snap = tmp_path / "snap.npz"
    snap.write_bytes(b"PK\x03\x04 this is not a whole npz file")
    log = tmp_path / "refused.log"
    refused = ServiceProcess(models_dir, log, FORECAST_SNAPSHOT_PATH=str(snap)).start(wait=False)
    assert refused.proc is not None
    assert refused.proc.wait(timeout=60) != 0
    text = log.read_text()
    assert f"snapshot {snap} is corrupt" in text and "START_EMPTY_ON_ERROR" in text, text[-2000:]
    empty = ServiceProcess(
        models_dir,
        tmp_path / "empty.log",
        FORECAST_SNAPSHOT_PATH=str(snap),
        FORECAST_SNAPSHOT_START_EMPTY_ON_ERROR="true",
    ).start()
    processes.append(empty)
    with httpx.Client(base_url=empty.url, timeout=30) as c:
        assert c.get(f"/v1/models/{SENSOR}/streams/k").status_code == 404
    assert "starting empty" in (tmp_path / "empty.log").read_text()


def test_a_snapshot_of_another_shape_is_refused_whole_and_names_the_file(tmp_path: Path) -> None:
    from service.engine import snapshot
    from service.engine.store import MemoryStateStore, StoreLayout

    def store(state_size: int) -> MemoryStateStore:
        return MemoryStateStore(StoreLayout(state_size, 6, 2), 8, lambda _: False, lambda _: None)

    saved = {"a|1": store(4), "b|1": store(4)}
    for s in saved.values():
        s.put("x", np.ones(4, np.float32), np.ones(6, np.float32), np.ones(2, np.float32),
              3, 100.0, 1, True)  # fmt: skip
    path = tmp_path / "snap.npz"
    snapshot.save(path, saved)
    # "a" still fits, "b" now has another state size: nothing at all may be restored.
    target = {"a|1": store(4), "b|1": store(5)}
    with pytest.raises(snapshot.SnapshotError, match=re.escape(f"snapshot {path}: b|1 state rows")):
        snapshot.restore(path, target)
    assert len(target["a|1"]) == 0 and len(target["b|1"]) == 0
    assert snapshot.restore(path, {"a|1": store(4), "b|1": store(4)}) == {"a|1": 1, "b|1": 1}
