"""Save every stream's state on graceful stop; restore it on start.

One .npz file (no pickle: stream ids travel as JSON bytes), written to a temporary
name and renamed, so a crash mid-write leaves the previous snapshot intact. Streams
are restored only into the same model name and version they were saved from.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import orjson

from service.streams import ModelStreams

log = logging.getLogger(__name__)

_FORMAT = 1


def _key(model: ModelStreams) -> str:
    return f"{model.name}|{model.version}"


def save(path: Path, models: list[ModelStreams]) -> int:
    arrays: dict[str, np.ndarray] = {"format": np.array([_FORMAT])}
    total = 0
    for model in models:
        snap = model.store.snapshot()
        ids = snap.pop("ids")
        arrays[f"{_key(model)}|ids"] = np.frombuffer(
            orjson.dumps([str(i) for i in ids]), dtype=np.uint8
        )
        for field, value in snap.items():
            arrays[f"{_key(model)}|{field}"] = value
        total += len(ids)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return total


def restore(path: Path, models: list[ModelStreams]) -> int:
    if not path.exists():
        return 0
    total = 0
    with np.load(path, allow_pickle=False) as data:
        if "format" not in data or int(data["format"][0]) != _FORMAT:
            log.error("snapshot %s has an unknown format; starting without it", path)
            return 0
        saved = {k.rsplit("|", 1)[0] for k in data.files if k != "format"}
        by_key = {_key(m): m for m in models}
        for key in sorted(saved):
            model = by_key.get(key)
            if model is None:
                log.warning("snapshot holds streams of %s, which is not served; dropped", key)
                continue
            fields = ("state", "forecast", "inputs", "seq", "ts", "count", "idle")
            arrays = {f: data[f"{key}|{f}"] for f in fields}
            if f"{key}|streak" in data:  # older snapshots have no fill streak
                arrays["streak"] = data[f"{key}|streak"]
            arrays["ids"] = np.array(orjson.loads(data[f"{key}|ids"].tobytes()), dtype=object)
            try:
                n = model.store.restore(arrays)
            except ValueError as exc:
                log.error("snapshot of %s not restored: %s", key, exc)
                continue
            model.after_restore()
            model.metrics.live_streams.set(len(model.store))
            total += n
    return total
