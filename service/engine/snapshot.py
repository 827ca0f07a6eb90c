"""The memory backend's snapshot file: saved periodically and on graceful stop, restored
on start.

One .npz file (no pickle: stream ids travel as JSON bytes), written to a temporary
name, fsynced and renamed, so a crash mid-write leaves the previous snapshot intact.
Streams are restored only into the same model name and version they were saved from.
A file that cannot be read whole is refused (SnapshotError names it), never half-loaded.
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import orjson

from service.engine.store import StateStore

log = logging.getLogger(__name__)

_FORMAT = 1
_FIELDS = ("state", "forecast", "inputs", "seq", "ts", "count", "idle")


class SnapshotError(RuntimeError):
    """The snapshot file exists but is corrupt or does not match the served models."""


def collect(stores: Mapping[str, StateStore]) -> dict[str, np.ndarray]:
    """Copy every store (keyed "name|version") into arrays; cheap, on the event loop."""
    arrays: dict[str, np.ndarray] = {"format": np.array([_FORMAT])}
    for key, store in stores.items():
        snap = store.snapshot()
        ids = snap.pop("ids")
        arrays[f"{key}|ids"] = np.frombuffer(orjson.dumps([str(i) for i in ids]), dtype=np.uint8)
        for field, value in snap.items():
            arrays[f"{key}|{field}"] = value
    return arrays


def write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Atomically replace the file: temp file, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power loss
    finally:
        os.close(fd)


def save(path: Path, stores: Mapping[str, StateStore]) -> int:
    """Write every store to one file; returns the streams saved."""
    arrays = collect(stores)
    write(path, arrays)
    return sum(len(store) for store in stores.values())


def restore(path: Path, stores: Mapping[str, StateStore]) -> dict[str, int]:
    """Load what the file holds into the stores of the same key; returns the streams
    restored per key (keys the file does not hold are absent). Raises SnapshotError,
    naming the file, when it cannot be read whole or its rows do not fit."""
    if not path.exists():
        return {}
    try:
        loaded = _read(path, stores)
    except SnapshotError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, orjson.JSONDecodeError) as exc:
        raise SnapshotError(
            f"snapshot {path} is corrupt ({type(exc).__name__}: {exc}); move it away, or set "
            "FORECAST_SNAPSHOT_START_EMPTY_ON_ERROR=true to start without it"
        ) from exc
    restored: dict[str, int] = {}
    for key, arrays in loaded.items():
        restored[key] = stores[key].restore(arrays)
    return restored


def _read(path: Path, stores: Mapping[str, StateStore]) -> dict[str, dict[str, np.ndarray]]:
    """Every served key's arrays, all read and checked before any store changes."""
    out: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as data:
        if "format" not in data.files or int(data["format"][0]) != _FORMAT:
            raise SnapshotError(
                f"snapshot {path} has an unknown format (want {_FORMAT}); move it away, or "
                "set FORECAST_SNAPSHOT_START_EMPTY_ON_ERROR=true to start without it"
            )
        saved = {k.rsplit("|", 1)[0] for k in data.files if k != "format"}
        for key in sorted(saved):
            store = stores.get(key)
            if store is None:
                log.warning("snapshot %s holds streams of %s, which is not served", path, key)
                continue
            arrays = {f: data[f"{key}|{f}"] for f in _FIELDS}
            if f"{key}|streak" in data.files:  # older snapshots have no fill streak
                arrays["streak"] = data[f"{key}|streak"]
            arrays["ids"] = np.array(orjson.loads(data[f"{key}|ids"].tobytes()), dtype=object)
            layout = store.layout
            n = len(arrays["ids"])
            want = {
                "state": (n, layout.state_size),
                "forecast": (n, layout.forecast_size),
                "inputs": (n, layout.n_inputs),
            }
            for field, shape in want.items():
                if arrays[field].shape != shape:
                    raise SnapshotError(
                        f"snapshot {path}: {key} {field} rows have shape "
                        f"{arrays[field].shape}, this model needs {shape}; move it away, or "
                        "set FORECAST_SNAPSHOT_START_EMPTY_ON_ERROR=true to start without it"
                    )
            if any(len(arrays[f]) != n for f in _FIELDS):
                raise SnapshotError(f"snapshot {path}: {key} has fields of different lengths")
            out[key] = arrays
    return out
