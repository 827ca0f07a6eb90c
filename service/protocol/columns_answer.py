"""The columnar answer: per-row columns built from the engine's arrays, serialised by
orjson straight from numpy, with no object per row (``ColumnsAnswer`` in schemas.py is
its schema); and the bound of its size known before any work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import ServiceError, render
from service.protocol.columns import NO_SEQ
from service.protocol.timestamps import format_ts


def columns_answer_bytes(n: int, detail: str, horizon: int, n_quantiles: int) -> int:
    """An upper bound of a columnar answer's size, known before any work: per row a
    status, seq, ts, filled, duplicate, room for an error, and its forecast numbers (at
    most 17 characters each with the comma)."""
    numbers = {"full": n_quantiles, "median": 1, "none": 0}[detail] * horizon
    return 512 + n * (400 + 17 * numbers + (6 * horizon if numbers else 0))


@dataclass
class ColumnsResult:
    """The engine's outcome, one row per stream (errors by row; rows in ``errors`` are
    failed, every other row applied or was a duplicate)."""

    seq: np.ndarray  # int64, NO_SEQ: none
    ts: np.ndarray  # float64, the stream's last applied ts
    filled: np.ndarray  # int32
    duplicate: np.ndarray  # bool
    forecast: np.ndarray  # float32 [n, H, Q]
    errors: dict[int, ServiceError]

    @classmethod
    def empty(
        cls, n: int, horizon: int, n_quantiles: int, errors: dict[int, ServiceError]
    ) -> ColumnsResult:
        return cls(
            np.full(n, NO_SEQ, dtype=np.int64),
            np.full(n, np.nan, dtype=np.float64),
            np.zeros(n, dtype=np.int32),
            np.zeros(n, dtype=np.bool_),
            np.full((n, horizon, n_quantiles), np.nan, dtype=np.float32),
            dict(errors),
        )


def answer_columns(
    model: str,
    version: str,
    ids: list[str],
    result: ColumnsResult,
    detail: str,
    quantiles: list[float],
    median_index: int,
) -> dict[str, Any]:
    """The columnar answer: per-row status, seq, ts, filled, duplicate, the forecasts as
    one array; failed rows carry null there and their error in ``errors``."""
    n = len(ids)
    status = np.full(n, 200, dtype=np.int16)
    errors: list[dict[str, Any]] = []
    failed = sorted(result.errors)
    for i in failed:
        code, rendered, _ = render(result.errors[i])
        status[i] = code
        errors.append(
            {"index": i, "stream_id": ids[i] or None, "status": code, **rendered["error"]}
        )
    seq = result.seq
    if (seq == NO_SEQ).all():
        seqs: list[int | None] = [None] * n
    else:
        seqs = seq.tolist()
        for i in np.flatnonzero(seq == NO_SEQ).tolist():
            seqs[i] = None
    ts = result.ts
    stamps, inverse = np.unique(ts, return_inverse=True)
    text = [None if t != t else format_ts(t) for t in stamps.tolist()]
    body: dict[str, Any] = {
        "model": model,
        "version": version,
        "status": status,
        "seq": seqs,
        "ts": [text[k] for k in inverse.tolist()],
        "filled": result.filled,
        "duplicate": result.duplicate,
        "errors": errors,
    }
    if detail == "full":
        body["forecast"] = {"quantiles": quantiles, "values": result.forecast}
    elif detail == "median":
        body["forecast"] = {"median": np.ascontiguousarray(result.forecast[:, :, median_index])}
    return body
