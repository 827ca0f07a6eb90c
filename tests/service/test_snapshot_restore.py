"""Snapshots restore only into what wrote them: same file format, same model name and
version, same state layout. A file the service cannot read whole (unknown format, a
served model's rows of another layout) stops the start with an error naming the file,
unless the operator asks to start empty; streams of a model no longer served are
dropped. Never a partial or mixed-up load."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from svc_helpers import SENSOR, STOCK, held_out, make_settings, obs_body

from service.engine.registry import Registry
from service.engine.snapshot import SnapshotError

STREAM = "/v1/models/{model}/streams/{sid}"


def _written_snapshot(models_dir: Path, serve, tmp_path: Path) -> dict[str, np.ndarray]:
    """A snapshot written by a graceful stop: sensor stream `a` (3 obs), stock `s`."""
    seconds, values = held_out(models_dir, SENSOR, 3)
    first = serve()
    with httpx.Client(base_url=first.url) as c:
        for i in range(3):
            obs = {"observations": [obs_body(seconds[i], values[i], i)]}
            r = c.post(STREAM.format(model=SENSOR, sid="a") + "/observations", json=obs)
            assert r.status_code == 200, r.text
        stock = {"observations": [{"ts": "2018-12-07", "value": 2600.0}]}
        c.post(STREAM.format(model=STOCK, sid="s") + "/observations", json=stock)
    first.stop()
    with np.load(tmp_path / "snapshot.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def _rename(arrays: dict[str, np.ndarray], old: str, new: str) -> dict[str, np.ndarray]:
    return {(new + k[len(old) :] if k.startswith(old) else k): v for k, v in arrays.items()}


def _wider_state(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(arrays)
    key = f"{SENSOR}|1|state"
    out[key] = np.concatenate([arrays[key], np.zeros((len(arrays[key]), 1), np.float32)], 1)
    return out


def _format_2(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {**arrays, "format": np.array([2])}


REFUSED = None  # the service does not start on this file
CASES: dict[
    str, tuple[Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]], int | None, int | None]
] = {
    # change -> (status of sensor stream a, status of stock stream s) after the restart
    "unchanged": (lambda a: a, 200, 200),
    "unknown file format": (_format_2, REFUSED, REFUSED),
    "other model version": (lambda a: _rename(a, f"{SENSOR}|1|", f"{SENSOR}|2|"), 404, 200),
    "other state layout": (_wider_state, REFUSED, REFUSED),
}


@pytest.mark.parametrize("case", list(CASES))
def test_snapshot_restores_only_a_matching_model(
    models_dir: Path, serve, tmp_path: Path, case: str
) -> None:
    arrays = _written_snapshot(models_dir, serve, tmp_path)
    change, sensor_status, stock_status = CASES[case]
    path = tmp_path / "snapshot.npz"
    with open(path, "wb") as fh:
        np.savez(fh, **change(arrays))  # type: ignore[arg-type]
    if sensor_status is REFUSED:
        # The same snapshot path (test settings): the start is refused, naming the file.
        registry = Registry(make_settings(models_dir, tmp_path))
        with pytest.raises(SnapshotError, match=re.escape(str(path))):
            asyncio.run(registry.start())
        # The operator's way out: start empty, the file is not loaded at all.
        server = serve(snapshot_start_empty_on_error=True)
        sensor_status = stock_status = 404
    else:
        server = serve()
    with httpx.Client(base_url=server.url) as c:
        a = c.get(STREAM.format(model=SENSOR, sid="a"))
        s = c.get(STREAM.format(model=STOCK, sid="s"))
        assert (a.status_code, s.status_code) == (sensor_status, stock_status)
        if sensor_status == 200:
            assert (a.json()["count"], a.json()["seq"]) == (3, 2)
        # The last observation again: a retry if restored, else a fresh stream's first.
        seconds, values = held_out(models_dir, SENSOR, 3)
        obs = {"observations": [obs_body(seconds[2], values[2], 2)]}
        r = c.post(STREAM.format(model=SENSOR, sid="a") + "/observations", json=obs).json()
        assert r["duplicate"] is (sensor_status == 200)
