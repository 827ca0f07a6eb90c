"""The columnar multi-stream body: parallel arrays in, parallel arrays out.

A bulk producer sends one object of columns (``stream_ids``, ``ts``, ``seqs``,
``values``) instead of one object per stream. Every column is checked as a whole — its
element types as one set, its numbers as one numpy array, the id characters with one
regex over all ids — and only a column that fails is walked row by row to word the
errors, each naming the row, the stream and the field. A bad row is refused alone;
the others go on. ``ColumnsBody`` (bodies.py) is the schema; the answer is
columns_answer.py's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from service.errors import InvalidInput, ServiceError
from service.protocol.bodies import ECHO_CHARS, F32_MAX, MAX_SEQ, MAX_STREAM_ID, STREAM_ID_CHARS
from service.protocol.entries import check_detail
from service.protocol.requests import WireSpec, check_keys, check_stream_id
from service.protocol.timestamps import MAX_TS, MIN_TS, parse_ts

COLUMNS_KEYS = frozenset(("stream_ids", "ts", "seqs", "values", "forecast"))
NO_SEQ = -1  # a row without a seq (the store's NO_SEQ: engine/columns.py checks they agree)
_BAD_ID_CHAR = re.compile(f"[^{STREAM_ID_CHARS}]")
_NUMBER = (float, int)


@dataclass
class ColumnsRequest:
    """A parsed columnar request: one row per stream, rows refused at parse in ``errors``."""

    ids: list[str]  # a refused row keeps its position ("" when its id was not valid)
    ts: np.ndarray  # float64 [n] epoch seconds
    seq: np.ndarray  # int64 [n], NO_SEQ where none was given
    values: np.ndarray  # float32 [n, inputs], NaN = missing
    missing: np.ndarray  # bool [n]: the row has a missing value
    detail: str
    errors: dict[int, ServiceError] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.ids)


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _name(ids: list[str], i: int) -> str:
    """A row's stream in a message (a valid id only, so the answer stays bounded)."""
    return f" (stream {ids[i]!r})" if ids[i] else ""


def parse_columns(
    data: dict[str, Any], spec: WireSpec, allowed: frozenset[str] = COLUMNS_KEYS
) -> ColumnsRequest:
    check_keys(data, allowed)
    detail = check_detail(data.get("forecast"))
    errors: dict[int, ServiceError] = {}
    ids = _ids(data.get("stream_ids"), errors)
    n = len(ids)
    ts = _timestamps(data.get("ts"), ids, errors)
    seq = _seqs(data.get("seqs"), ids, errors)
    values = _values(data.get("values"), ids, spec, errors)
    assert len(ts) == len(seq) == len(values) == n
    return _request(ids, ts, seq, values, detail, errors)


def check_arrays(
    raw_ids: object,
    ts: np.ndarray,
    seqs: np.ndarray | None,
    values: np.ndarray,
    detail: str,
    spec: WireSpec,
) -> ColumnsRequest:
    """The same checks on columns that arrived as arrays (the binary form): shapes are
    the caller's; here the ids, the ranges, and the words for each bad row."""
    errors: dict[int, ServiceError] = {}
    ids = _ids(raw_ids, errors)
    bad_ts = ~((ts >= MIN_TS) & (ts <= MAX_TS))  # NaN too
    for i in np.flatnonzero(bad_ts).tolist():
        errors.setdefault(i, InvalidInput(f"ts[{i}]{_name(ids, i)}: epoch seconds out of range"))
    if seqs is None:
        seq = np.full(len(ids), NO_SEQ, dtype=np.int64)
    else:
        seq = seqs.astype(np.int64)
        for i in np.flatnonzero(~(((seq >= 0) & (seq < MAX_SEQ)) | (seq == NO_SEQ))).tolist():
            errors.setdefault(
                i, InvalidInput(f"seqs[{i}]{_name(ids, i)}: must be in [0, 2^62), or -1: none")
            )
    vals = values.astype(np.float32)  # a copy: refused rows are zeroed below
    bad = np.isinf(vals)
    for j, low, _ in spec.bounds:
        bad[:, j] |= vals[:, j] <= low
    for i, j in zip(*np.nonzero(bad), strict=True):
        i, j = int(i), int(j)
        if i not in errors:
            try:
                _row(i, [None if v != v else v for v in vals[i].tolist()], ids, spec)
            except ServiceError as exc:
                errors[i] = exc
            else:
                errors[i] = InvalidInput(f"values[{i}][{j}]{_name(ids, i)}: must be finite")
    return _request(ids, np.ascontiguousarray(ts, dtype=np.float64), seq, vals, detail, errors)


def _request(
    ids: list[str],
    ts: np.ndarray,
    seq: np.ndarray,
    values: np.ndarray,
    detail: str,
    errors: dict[int, ServiceError],
) -> ColumnsRequest:
    missing = np.isnan(values).any(axis=1)
    for i in errors:  # refused rows carry no numbers into the engine
        values[i] = 0.0
        missing[i] = False
    return ColumnsRequest(ids, ts, seq, values, missing, detail, errors)


def _ids(raw: object, errors: dict[int, ServiceError]) -> list[str]:
    if type(raw) is not list:
        raise InvalidInput(f"stream_ids: must be a list of stream ids, got {_type_name(raw)}")
    if not raw:
        raise InvalidInput("stream_ids: must hold at least one stream id")
    ids: list[str] = raw
    n = len(ids)
    lengths_ok = (
        set(map(type, ids)) == {str}
        and min(map(len, ids)) > 0
        and max(map(len, ids)) <= MAX_STREAM_ID
    )
    if not lengths_ok or _BAD_ID_CHAR.search("".join(ids)) is not None:
        ids = list(ids)
        for i, sid in enumerate(ids):  # the error path: find and word the bad ones
            try:
                check_stream_id(sid, f"stream_ids[{i}]")
            except ServiceError as exc:
                errors[i] = exc
                ids[i] = ""
    if len(set(ids)) != n:
        first: dict[str, int] = {}
        for i, sid in enumerate(ids):
            if not sid:
                continue
            at = first.setdefault(sid, i)
            if at != i:
                errors[i] = InvalidInput(
                    f"stream_ids[{i}]: {sid!r} already appears at stream_ids[{at}]; "
                    "send a stream once per request"
                )
    return ids


def _column(raw: object, name: str, n: int) -> list[Any]:
    if type(raw) is not list:
        raise InvalidInput(f"{name}: must be a list, got {_type_name(raw)}")
    if len(raw) != n:
        raise InvalidInput(f"{name}: has {len(raw)} rows, stream_ids has {n}")
    return raw


def _timestamps(raw: object, ids: list[str], errors: dict[int, ServiceError]) -> np.ndarray:
    """One shared ``ts`` (a tick) or one per stream."""
    n = len(ids)
    if raw is None:
        raise InvalidInput("ts: is required (one timestamp for all, or a list of one per stream)")
    if type(raw) is not list:
        try:
            return np.full(n, parse_ts(raw), dtype=np.float64)
        except ValueError as exc:
            raise InvalidInput(f"ts: {exc}") from None
    column = _column(raw, "ts", n)
    if set(map(type, column)) <= {str, float, int}:
        parsed: dict[Any, float] = {}
        try:
            for value in set(column):  # a tick repeats: each distinct value parsed once
                parsed[value] = parse_ts(value)
        except ValueError:
            pass  # worded below
        else:
            return np.fromiter(map(parsed.__getitem__, column), dtype=np.float64, count=n)
    out = np.zeros(n, dtype=np.float64)
    for i, value in enumerate(column):  # the error path
        try:
            out[i] = parse_ts(value)
        except (ValueError, TypeError) as exc:
            reason = (
                exc
                if isinstance(exc, ValueError)
                else "must be an ISO 8601 string or epoch seconds"
            )
            errors.setdefault(i, InvalidInput(f"ts[{i}]{_name(ids, i)}: {reason}"))
    return out


def _seqs(raw: object, ids: list[str], errors: dict[int, ServiceError]) -> np.ndarray:
    n = len(ids)
    if raw is None:
        return np.full(n, NO_SEQ, dtype=np.int64)
    column = _column(raw, "seqs", n)
    kinds = set(map(type, column))
    if kinds <= {int, type(None)}:
        nulls = column.count(None)
        try:
            arr = np.array([NO_SEQ if s is None else s for s in column] if nulls else column,
                           dtype=np.int64)  # fmt: skip
        except OverflowError:
            pass  # worded below
        else:
            absent = arr == NO_SEQ
            if ((arr >= 0) & (arr < MAX_SEQ) | absent).all() and int(absent.sum()) == nulls:
                return arr
    out = np.full(n, NO_SEQ, dtype=np.int64)
    for i, s in enumerate(column):  # the error path
        if s is None:
            continue
        if type(s) is int and 0 <= s < MAX_SEQ:
            out[i] = s
        else:
            errors.setdefault(
                i,
                InvalidInput(
                    f"seqs[{i}]{_name(ids, i)}: must be an integer in [0, 2^62) or null, "
                    f"got {s!r:.40}"
                ),
            )
    return out


def _values(
    raw: object, ids: list[str], spec: WireSpec, errors: dict[int, ServiceError]
) -> np.ndarray:
    n, width = len(ids), spec.n_inputs
    column = _column(raw, "values", n)
    arr: np.ndarray | None = None
    if set(map(type, column)) == {list} and set(map(len, column)) == {width}:
        kinds = set(map(type, chain.from_iterable(column)))
        if kinds <= {float, int, type(None)}:
            try:
                arr = np.array(column, dtype=np.float64)  # null -> NaN: missing
            except OverflowError:
                arr = None
    if arr is not None:
        bad = np.abs(arr) > F32_MAX
        for j, low, _ in spec.bounds:  # min_exclusive (NaN, missing, passes)
            bad[:, j] |= arr[:, j] <= low
        if not bad.any():
            return arr.astype(np.float32)
    out = np.zeros((n, width), dtype=np.float32)
    for i, row in enumerate(column):  # the error path: word each bad row
        try:
            out[i] = _row(i, row, ids, spec)
        except ServiceError as exc:
            errors.setdefault(i, exc)
    return out


def _row(i: int, row: object, ids: list[str], spec: WireSpec) -> list[float]:
    where = f"values[{i}]"
    who = _name(ids, i)
    if type(row) is not list:
        raise InvalidInput(
            f"{where}{who}: must be a list of numbers or nulls, got {_type_name(row)}"
        )
    if len(row) != spec.n_inputs:
        raise InvalidInput(f"{where}{who}: has {len(row)} values, the model takes {spec.n_inputs}")
    out: list[float] = []
    for j, v in enumerate(row):
        if v is None:
            out.append(float("nan"))
            continue
        if type(v) not in _NUMBER:
            raise InvalidInput(f"{where}[{j}]{who}: must be a number or null, got {_type_name(v)}")
        try:
            fv = float(v)
        except OverflowError:
            fv = float("inf")
        if not -F32_MAX <= fv <= F32_MAX:
            raise InvalidInput(f"{where}[{j}]{who}: {v!r:.{ECHO_CHARS}} does not fit float32")
        out.append(fv)
    for j, low, why in spec.bounds:
        if not out[j] > low and out[j] == out[j]:
            raise InvalidInput(f"{where}[{j}]{who}: must be > {low:g} ({why}), got {row[j]!r:.40}")
    return out


# The row form's fields of a row's one observation, and the columns that hold them here.
ROW_FIELDS = (("observations[0].values", "values"), ("observations[0].ts", "ts"),
              ("observations[0].seq", "seqs"))  # fmt: skip


STREAM_ENTRY = re.compile(r"^streams\[\d+\]\.")


def columns_wording(message: str, k: int, sid: str) -> str:
    """A row's error from the general (row-form) path in the columnar request's own
    terms, as the columns' own checks word theirs: ``observations[0].ts: ...`` of row k
    becomes ``ts[k] (stream 'id'): ...``; any other message is located by its row.
    The multi-stream path's ``streams[i].`` in front is its own entry's place: dropped."""
    message = STREAM_ENTRY.sub("", message, count=1)
    for row_field, column in ROW_FIELDS:
        if message.startswith(row_field):
            sub, sep, text = message[len(row_field) :].partition(": ")
            if sep and (not sub or sub.startswith("[")):  # e.g. "[1]": an input's index
                return f"{column}[{k}]{sub} (stream {sid!r}): {text}"
    for head in ("observations[0]: ", "observations: "):
        if message.startswith(head):
            message = message[len(head) :]
            break
    return f"stream_ids[{k}] ({sid!r}): {message}"
