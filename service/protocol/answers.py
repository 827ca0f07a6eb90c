"""Every answer body the service sends, and the one JSON encoder.

Answers are plain dicts serialised by orjson, numpy arrays included (no tolist). A
model's ``Answers`` knows its forecast shape (horizon timestamps, quantile levels,
median column), so the engine hands it numbers and gets bodies back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson

from service.errors import ServiceError, render
from service.protocol.timestamps import format_ts

Body = dict[str, Any]
DETAILS = ("full", "median", "none")  # how much forecast a multi-stream result carries

_OPTS = orjson.OPT_SERIALIZE_NUMPY


def dumps(body: Any) -> bytes:
    return orjson.dumps(body, option=_OPTS)


def error_entry(exc: BaseException, stream_id: str | None = None) -> Body:
    """One failed entry of a multi-stream request or WebSocket message."""
    status, body, _ = render(exc)
    sid = stream_id if stream_id is not None else getattr(exc, "stream_id", None)
    return {"stream_id": sid, "status": status, **body}


class Answers:
    """The answer bodies of one model."""

    def __init__(
        self,
        forecast_ts: Callable[[float], orjson.Fragment],
        quantiles: Sequence[float],
        median_index: int,
    ) -> None:
        self._forecast_ts = forecast_ts  # pre-serialised horizon timestamps after a ts
        self._quantiles = orjson.Fragment(orjson.dumps(list(quantiles)))
        self._median = median_index

    def forecast(self, ts: float, values: np.ndarray) -> Body:
        """The forecast after ts: values [H, Q]."""
        return {"ts": self._forecast_ts(ts), "quantiles": self._quantiles, "values": values}

    def applied(
        self, stream_id: str, seq: int | None, ts: float, filled: int, values: np.ndarray
    ) -> Body:
        """A stream's answer after its observations were applied."""
        return {
            "stream_id": stream_id,
            "seq": seq,
            "ts": format_ts(ts),
            "filled": filled,
            "duplicate": False,
            "forecast": self.forecast(ts, values),
        }

    def stored(
        self, stream_id: str, seq: int | None, ts: float, count: int | None, values: np.ndarray
    ) -> Body:
        """What a stream holds: its status (with count), or a retry's answer (count None:
        the same answer again, flagged as a duplicate)."""
        body: Body = {"stream_id": stream_id, "seq": seq, "ts": format_ts(ts)}
        if count is None:
            body["filled"] = 0
            body["duplicate"] = True
        else:
            body["count"] = count
        body["forecast"] = self.forecast(ts, values)
        return body

    def stateless(self, ts: float, filled: int, values: np.ndarray) -> Body:
        return {"ts": format_ts(ts), "filled": filled, "forecast": self.forecast(ts, values)}

    def trim(self, result: Body, detail: str) -> Body:
        """A full answer cut down to the detail a multi-stream request asked for."""
        forecast = result.get("forecast")
        if forecast is not None and "values" in forecast and detail != "full":
            if detail == "none":
                del result["forecast"]
            else:
                median = np.ascontiguousarray(forecast["values"][:, self._median])
                result["forecast"] = {"ts": forecast["ts"], "median": median}
        return result

    def entry(self, stream_id: str | None, result: Body | ServiceError, detail: str) -> Body:
        """One entry's answer in a multi-stream request: its error, or its result."""
        if isinstance(result, ServiceError):
            return error_entry(result, stream_id)
        return self.trim(result, detail)

    def entries(
        self, entries: Sequence[object], results: Sequence[Body | ServiceError], detail: str
    ) -> list[Body]:
        """A whole multi-stream answer: ``entry`` for every result, in one loop (it runs
        per stream of every bulk request, so it avoids a call per stream). ``entries``
        are the parsed entries, (stream id, ...) tuples or their parse errors."""
        out: list[Body] = list(results)  # type: ignore[arg-type]  # errors replaced below
        trim = detail != "full"
        for i, result in enumerate(results):
            if isinstance(result, ServiceError):
                entry = entries[i]
                sid = entry[0] if type(entry) is tuple else getattr(entry, "stream_id", None)
                out[i] = error_entry(result, sid)
            elif trim and "values" in result.get("forecast", ()):
                out[i] = self.trim(result, detail)
        return out

    def block(
        self,
        at: Sequence[int],
        ids: Sequence[str],
        seqs: Sequence[int | None],
        ts: np.ndarray,
        forecast: np.ndarray,
        detail: str,
        results: list[Any],
    ) -> None:
        """The answers of many streams stepped once each, built in bulk: each distinct
        timestamp is formatted once into a template copied per stream, and forecast
        rows are views taken in one call. (Serialising the whole [n, H, Q] array at once
        and splitting the text was measured slower: orjson then copies the fragments,
        and per-row numpy serialisation is already C speed.) Stream k's answer goes
        to ``results[at[k]]``."""
        stamps = ts.tolist()
        templates: dict[float, Body] = {
            t: {"stream_id": None, "seq": None, "ts": format_ts(t), "filled": 0, "duplicate": False}
            for t in set(stamps)
        }
        if detail == "none":
            for i, sid, seq, t in zip(at, ids, seqs, stamps, strict=True):
                body = results[i] = templates[t].copy()
                body["stream_id"] = sid
                body["seq"] = seq
            return
        heads = {t: self._forecast_ts(t) for t in templates}
        if detail == "median":
            rows = list(np.ascontiguousarray(forecast[:, :, self._median]))
            for i, sid, seq, t, row in zip(at, ids, seqs, stamps, rows, strict=True):
                body = results[i] = templates[t].copy()
                body["stream_id"] = sid
                body["seq"] = seq
                body["forecast"] = {"ts": heads[t], "median": row}
            return
        quantiles = self._quantiles
        for i, sid, seq, t, row in zip(at, ids, seqs, stamps, list(forecast), strict=True):
            body = results[i] = templates[t].copy()
            body["stream_id"] = sid
            body["seq"] = seq
            body["forecast"] = {"ts": heads[t], "quantiles": quantiles, "values": row}
