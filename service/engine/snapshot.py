"""Save every stream's state on graceful stop; restore it on start.

One .npz file (no pickle: stream ids travel as JSON bytes), written to a temporary
name and renamed, so a crash mid-write leaves the previous snapshot intact. Streams
are restored only into the same model name and version they were saved from.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import orjson

from service.engine.store import StateStore

log = logging.getLogger(__name__)

_FORMAT = 1


def save(path: Path, stores: Mapping[str, StateStore]) -> int:
    """Write every store (keyed "name|version") to one file; returns the streams saved."""
    arrays: dict[str, np.ndarray] = {"format": np.array([_FORMAT])}
    total = 0
    for key, store in stores.items():
        snap = store.snapshot()
        ids = snap.pop("ids")
        arrays[f"{key}|ids"] = np.frombuffer(orjson.dumps([str(i) for i in ids]), dtype=np.uint8)
        for field, value in snap.items():
            arrays[f"{key}|{field}"] = value
        total += len(ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return total


def restore(path: Path, stores: Mapping[str, StateStore]) -> dict[str, int]:
    """Load what the file holds into the stores of the same key; returns the streams
    restored per key (keys the file does not hold are absent)."""
    restored: dict[str, int] = {}
    if not path.exists():
        return restored
    with np.load(path, allow_pickle=False) as data:
        if "format" not in data or int(data["format"][0]) != _FORMAT:
            log.error("snapshot %s has an unknown format; starting without it", path)
            return restored
        saved = {k.rsplit("|", 1)[0] for k in data.files if k != "format"}
        for key in sorted(saved):
            store = stores.get(key)
            if store is None:
                log.warning("snapshot holds streams of %s, which is not served; dropped", key)
                continue
            fields = ("state", "forecast", "inputs", "seq", "ts", "count", "idle")
            arrays = {f: data[f"{key}|{f}"] for f in fields}
            if f"{key}|streak" in data:  # older snapshots have no fill streak
                arrays["streak"] = data[f"{key}|streak"]
            arrays["ids"] = np.array(orjson.loads(data[f"{key}|ids"].tobytes()), dtype=object)
            try:
                restored[key] = store.restore(arrays)
            except ValueError as exc:
                log.error("snapshot of %s not restored: %s", key, exc)
    return restored
