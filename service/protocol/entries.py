"""The multi-stream body: its entries checked in bulk, and each bad entry worded alone.

``ManyStreamsBody`` (requests.py) is its schema. The common entry, one observation with
a values list, is cleared by quick shape checks and one numpy check of all its numbers;
the per-entry path words every other case with the same rules as a single stream's body
(measured ~2x faster per entry than a pydantic model per entry when entries fail alone;
tests/service/test_parse_entries.py holds the two lanes to the same verdicts).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from service.errors import InvalidInput, ServiceError
from service.protocol.answers import DETAILS
from service.protocol.requests import (
    F32_MAX,
    MAX_SEQ,
    MAX_STREAM_ID,
    OBS_KEYS,
    Bounds,
    Obs,
    WireSpec,
    check_keys,
    check_reset,
    check_stream_id,
    parse_observations,
    parse_one,
)
from service.protocol.timestamps import parse_ts

Entry = tuple[str, list[Obs], bool]  # (stream id, observations, reset)
MANY_KEYS = frozenset(("streams", "forecast"))
ENTRY_KEYS = frozenset(("stream_id", "observations", "reset"))


@dataclass
class ManyRequest:
    entries: list[Entry | ServiceError]
    detail: str


def parse_many_body(
    data: dict[str, Any], spec: WireSpec, allowed: frozenset[str] = MANY_KEYS
) -> ManyRequest:
    check_keys(data, allowed)
    detail = check_detail(data.get("forecast"))
    return ManyRequest(parse_entries(data.get("streams"), spec), detail)


def check_detail(value: object) -> str:
    """How much forecast each result of a multi-stream request carries."""
    if value is None:
        return "full"
    if value not in DETAILS:
        raise InvalidInput(f"forecast: must be one of {', '.join(DETAILS)}, got {value!r:.40}")
    return str(value)


def parse_entries(raw: object, spec: WireSpec) -> list[Entry | ServiceError]:
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
    entries: list[Entry | ServiceError] = []
    seen: dict[str, int] = {}
    n_inputs, max_history, bounds = spec.n_inputs, spec.max_history, spec.bounds
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
) -> Entry | ServiceError:
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
        return exc.located(message, sid if isinstance(sid, str) else None)
    return stream_id, obs, reset
