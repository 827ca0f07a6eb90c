"""The two hot endpoints as plain functions: bytes in, (status, bytes, headers) out.

Both the FastAPI routes and the ASGI fast path (middleware.py) call these, so the
behaviour is one piece of code whichever way a request arrives.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np

from service.api.responses import dumps, error_body
from service.core import ForecastService
from service.errors import InvalidInput, ServiceError
from service.parsing import (
    F32_MAX,
    MAX_SEQ,
    MAX_STREAM_ID,
    OBS_KEYS,
    Bounds,
    Obs,
    check_reset,
    check_stream_id,
    load_json,
    parse_observations,
    parse_one,
)
from service.protocol.timestamps import parse_ts
from service.streams import ModelStreams

Answer = tuple[int, bytes, list[tuple[bytes, bytes]]]

STREAM_KEYS = frozenset(("observations", "reset"))
ENTRY_KEYS = frozenset(("stream_id", "observations", "reset"))
_NO_HEADERS: list[tuple[bytes, bytes]] = []


def check_keys(data: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            names = ", ".join(sorted(allowed))
            raise InvalidInput(f"{where}{key}: unknown field (allowed: {names})")


def error_answer(exc: BaseException) -> Answer:
    if isinstance(exc, ServiceError):
        headers = [(k.lower().encode(), v.encode()) for k, v in exc.headers().items()]
        return exc.status, dumps(error_body(exc)), headers
    return 500, dumps(error_body(exc)), _NO_HEADERS


async def observe_stream(
    svc: ForecastService, model_name: str, stream_id: str, body: bytes
) -> Answer:
    model = svc.model(model_name)
    check_stream_id(stream_id, "stream_id")
    data = load_json(body)
    if len(data) > 1 or "observations" not in data:
        check_keys(data, STREAM_KEYS, "")
    obs = parse_observations(
        data.get("observations"), model.n_inputs, model.max_history, bounds=model.bounds
    )
    reset = check_reset(data.get("reset"), "reset")
    result = await model.observe(stream_id, obs, reset)
    result["model"] = model.name
    result["version"] = model.version
    return 200, dumps(result), _NO_HEADERS


async def observe_many(svc: ForecastService, model_name: str, body: bytes) -> Answer:
    model = svc.model(model_name)
    data = load_json(body)
    check_keys(data, MANY_KEYS, "")
    detail = check_detail(data.get("forecast"))
    entries = parse_entries(data.get("streams"), model)
    results = await model.observe_many(entries, detail)
    out = shape_results(model, entries, results, detail)
    return 200, dumps({"model": model.name, "version": model.version, "results": out}), _NO_HEADERS


MANY_KEYS = frozenset(("streams", "forecast"))
DETAILS = ("full", "median", "none")


def check_detail(value: object) -> str:
    """How much forecast each result of a multi-stream request carries."""
    if value is None:
        return "full"
    if value not in DETAILS:
        raise InvalidInput(f"forecast: must be one of {', '.join(DETAILS)}, got {value!r:.40}")
    return str(value)


def shape_results(
    model: ModelStreams,
    entries: list[tuple[str, list[Any], bool] | ServiceError],
    results: list[dict[str, Any] | ServiceError],
    detail: str,
) -> list[dict[str, Any]]:
    return [
        shape_result(model, entry, result, detail)
        for entry, result in zip(entries, results, strict=True)
    ]


def shape_result(
    model: ModelStreams,
    entry: tuple[str, list[Any], bool] | ServiceError,
    result: dict[str, Any] | ServiceError,
    detail: str,
) -> dict[str, Any]:
    """One entry's answer body: its error, or its result trimmed to the detail asked."""
    if isinstance(result, ServiceError):
        sid = entry_id(entry, result)
        return {"stream_id": sid, "status": result.status, **error_body(result)}
    forecast = result.get("forecast")
    if forecast is not None and "values" in forecast and detail != "full":
        # Answers from the general path come full; trim them to what was asked.
        if detail == "none":
            del result["forecast"]
        else:
            median = np.ascontiguousarray(forecast["values"][:, model.median_index])
            result["forecast"] = {"ts": forecast["ts"], "median": median}
    return result


class EntryError(InvalidInput):
    """A bad entry of a multi-stream request; remembers its stream id if it had one."""

    def __init__(self, message: str, stream_id: str | None) -> None:
        super().__init__(message)
        self.stream_id = stream_id


def entry_id(entry: object, result: ServiceError) -> str | None:
    if isinstance(entry, tuple):
        return str(entry[0])
    return getattr(result, "stream_id", None)


def parse_entries(
    raw: object, model: ModelStreams
) -> list[tuple[str, list[Any], bool] | ServiceError]:
    """Validate every stream entry; a bad one becomes its own error, the rest go on.

    The common entry, ``{"stream_id": ..., "observations": [one observation with a
    values list]}``, is checked for shape here and its numbers all at once as one numpy
    array; any entry the quick checks do not clear, and any entry whose numbers the
    array check rejects, goes through ``parse_entry``, which words the exact error.
    """
    if not isinstance(raw, list):
        raise InvalidInput("streams: must be a list of {stream_id, observations} objects")
    if not raw:
        raise InvalidInput("streams: must hold at least one stream")
    entries: list[tuple[str, list[Any], bool] | ServiceError] = []
    seen: dict[str, int] = {}
    n_inputs, max_history, bounds = model.n_inputs, model.max_history, model.bounds
    # Entries cleared by the quick checks: (entry index, position in raw, observation).
    quick: list[tuple[int, int, Obs]] = []
    rows: list[list[Any]] = []
    obs_keys = OBS_KEYS
    for i, e in enumerate(raw):
        if type(e) is dict and len(e) == 2:
            sid = e.get("stream_id")
            raw_obs = e.get("observations")
            if (
                type(sid) is str
                and 0 < len(sid) <= MAX_STREAM_ID
                and sid not in seen
                and type(raw_obs) is list
                and len(raw_obs) == 1
            ):
                o = raw_obs[0]
                if type(o) is dict and "value" not in o and o.keys() <= obs_keys:
                    values = o.get("values")
                    seq = o.get("seq")
                    raw_ts = o.get("ts")
                    if (
                        type(values) is list
                        and len(values) == n_inputs
                        and (seq is None or (type(seq) is int and 0 <= seq < MAX_SEQ))
                        and raw_ts is not None
                    ):
                        try:
                            ts = parse_ts(raw_ts)
                        except ValueError:
                            pass  # parse_entry words it
                        else:
                            seen[sid] = i
                            ob = Obs(ts, seq, values, False)
                            quick.append((len(entries), i, ob))
                            rows.append(values)
                            entries.append((sid, [ob], False))
                            continue
        entries.append(parse_entry(i, e, seen, n_inputs, max_history, bounds))
    if quick and not _all_floats_fit(rows):
        # Some value is an integer, null (missing), not a number or out of range:
        # integers become floats here, and every other case is parse_entry's to word.
        for at, i, ob in quick:
            values = ob.values
            if all(type(v) is float and -F32_MAX <= v <= F32_MAX for v in values) and all(
                values[j] > low  # type: ignore[operator]  # all floats here
                for j, low, _ in bounds
            ):
                continue
            entries[at] = parse_entry(i, raw[i], seen, n_inputs, max_history, bounds)
    elif quick and bounds:
        # min_exclusive (e.g. a price must be > 0): one array comparison per bounded input.
        arr = np.array(rows, dtype=np.float64)
        ok = np.ones(len(rows), dtype=np.bool_)
        for j, low, _ in bounds:
            ok &= arr[:, j] > low
        for k in np.flatnonzero(~ok).tolist():
            at, i, _ = quick[k]
            entries[at] = parse_entry(i, raw[i], seen, n_inputs, max_history, bounds)
    return entries


def _all_floats_fit(rows: list[list[Any]]) -> bool:
    """Whether every value is a float that fits float32, checked as one array."""
    if set(map(type, chain.from_iterable(rows))) != {float}:
        return False
    return bool(np.abs(np.array(rows, dtype=np.float64)).max() <= F32_MAX)


def parse_entry(
    i: int,
    e: object,
    seen: dict[str, int],
    n_inputs: int,
    max_history: int,
    bounds: Bounds = (),
) -> tuple[str, list[Any], bool] | ServiceError:
    """One entry of a multi-stream request, every check in order, errors worded."""
    try:
        if type(e) is not dict:
            raise InvalidInput(f"streams[{i}]: must be an object")
        if len(e) > 2 or "reset" in e:
            check_keys(e, ENTRY_KEYS, f"streams[{i}].")
        raw_id = e.get("stream_id")
        if type(raw_id) is str and 0 < len(raw_id) <= MAX_STREAM_ID:
            stream_id: str = raw_id
        else:
            stream_id = check_stream_id(raw_id, f"streams[{i}].stream_id")
        if seen.get(stream_id, i) != i:  # (the quick pass may have registered this entry)
            raise InvalidInput(
                f"streams[{i}].stream_id: {stream_id!r} already appears in "
                f"streams[{seen[stream_id]}]; send all of a stream's observations in one entry"
            )
        seen[stream_id] = i
        raw_obs = e.get("observations")
        if type(raw_obs) is list and len(raw_obs) == 1:
            obs = [parse_one(raw_obs[0], n_inputs, "", 0, bounds)]  # the common case, inline
        else:
            obs = parse_observations(raw_obs, n_inputs, max_history, "", bounds)
        reset = check_reset(e.get("reset"), f"streams[{i}].reset") if "reset" in e else False
    except ServiceError as exc:
        sid = e.get("stream_id") if isinstance(e, dict) else None
        message = exc.message
        if not message.startswith("streams["):
            # Field paths inside an entry are relative: name the entry here, on error only.
            message = f"streams[{i}].observations{message}"
        err = EntryError(message, sid if isinstance(sid, str) else None)
        err.status, err.code = exc.status, exc.code
        return err
    return stream_id, obs, reset
