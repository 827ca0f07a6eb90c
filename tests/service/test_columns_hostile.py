"""Hostile columnar requests over a real server (POST .../columns as JSON and binary, and
columnar WebSocket messages): a bad request is a 4xx in /v1's error shape naming the
field, a bad row is refused alone (its stream unchanged) while lane rows and general
rows of the same request apply, and the server answers a good request afterwards.
Table-driven cases, then a bounded, derandomised hypothesis run of random values in
the columns."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from svc_helpers import SENSOR, LiveServer, held_out
from websockets.sync.client import connect

from service.client import columns_binary_body

COLUMNS = f"/v1/models/{SENSOR}/columns"
JSON = {"content-type": "application/json"}
IDS = ["c0", "c1", "c2", "c3"]


def states(c: httpx.Client, ids: list[str]) -> dict[str, Any]:
    out = {}
    for sid in ids:
        r = c.get(f"/v1/models/{SENSOR}/streams/{sid}")
        out[sid] = r.json() if r.status_code == 200 else r.status_code
    return out


def assert_v1_error(r: httpx.Response, status: int, fragment: str, label: str) -> None:
    assert r.status_code == status, (label, r.status_code, r.text)
    error = r.json()["error"]
    assert set(error) >= {"code", "message"} and fragment in error["message"], (label, error)
    assert len(r.text) < 1024, label


def start(c: httpx.Client, seconds: np.ndarray, values: np.ndarray) -> None:
    """IDS streams with one observation each (so the next tick can take the lane)."""
    body = {"stream_ids": IDS, "ts": float(seconds[0]), "values": [list(values[0])] * len(IDS)}
    r = c.post(COLUMNS, json=body)
    assert r.status_code == 200 and r.json()["status"] == [200] * len(IDS), r.text


def request_level_json(tick: float, row: list[float]) -> list[tuple[str, Any, int, str]]:
    v = [row] * len(IDS)
    base = {"stream_ids": IDS, "ts": tick, "values": v}
    return [
        ("not JSON", b"{", 400, "not valid JSON"),
        ("NaN literal", b'{"stream_ids": ["c0"], "ts": NaN, "values": [[1, 2]]}', 400, "JSON"),
        ("a list", b"[]", 400, "JSON object"),
        ("stream_ids text", {**base, "stream_ids": "c0"}, 422, "stream_ids: must be a list"),
        ("N = 0", {"stream_ids": [], "ts": tick, "values": []}, 422, "at least one"),
        ("no ts", {"stream_ids": IDS, "values": v}, 422, "ts: is required"),
        ("ts object", {**base, "ts": {}}, 422, "ts: must be an ISO 8601"),
        ("ts bool", {**base, "ts": True}, 422, "ts: must be an ISO 8601"),
        ("ts huge", {**base, "ts": 10**30}, 422, "ts: epoch seconds out of range"),
        ("ts short", {**base, "ts": [tick]}, 422, "ts: has 1 rows, stream_ids has 4"),
        ("seqs text", {**base, "seqs": "1"}, 422, "seqs: must be a list"),
        ("seqs long", {**base, "seqs": [1] * 5}, 422, "seqs: has 5 rows"),
        ("values object", {**base, "values": {}}, 422, "values: must be a list"),
        ("values short", {**base, "values": v[:1]}, 422, "values: has 1 rows"),
        ("forecast", {**base, "forecast": "mean"}, 422, "forecast: must be one of"),
        ("unknown field", {**base, "reset": True}, 422, "reset: unknown field"),
    ]


def test_bad_columnar_json_requests_fail_whole_and_change_nothing(
    models_dir: Path, client: httpx.Client
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)
    start(client, seconds, values)
    before = states(client, IDS)
    for label, payload, status, fragment in request_level_json(seconds[1], list(values[1])):
        content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        assert_v1_error(
            client.post(COLUMNS, content=content, headers=JSON), status, fragment, label
        )
        assert states(client, IDS) == before, label
    r = client.post(
        COLUMNS, json={"stream_ids": IDS, "ts": seconds[1], "values": [list(values[1])] * 4}
    )
    assert r.json()["status"] == [200] * 4


def test_bad_rows_are_refused_alone_among_lane_and_general_rows(
    models_dir: Path, client: httpx.Client
) -> None:
    """One request with lane rows (c0: complete next period), general rows (c1: a
    missing value; a new stream) and bad rows of every kind: each bad row gets its own
    error naming the row and the field, its stream is unchanged, the others apply."""
    seconds, values = held_out(models_dir, SENSOR, 2)
    start(client, seconds, values)
    before = states(client, IDS)
    row = list(values[1])
    tick = float(seconds[1])
    body = {
        "stream_ids": ["c0", "c1", "fresh", "bad id", "c2", "c3", "c0", "c4", "c5"],
        "ts": [tick, tick, tick, tick, tick, "yesterday", tick, tick, tick],
        "seqs": [None, None, None, None, None, None, None, True, None],
        "values": [row, [row[0], None], row, row, ["1", row[1]], row, row, row, [row[0]]],
        "forecast": "none",
    }
    r = client.post(COLUMNS, json=body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == [200, 200, 200, 422, 422, 422, 422, 422, 422]
    errors = {e["index"]: e for e in answer["errors"]}
    expected = {
        3: (None, "stream_ids[3]: may only hold"),
        4: ("c2", "values[4][0] (stream 'c2'): must be a number or null, got str"),
        5: ("c3", "ts[5] (stream 'c3'): not an ISO 8601 timestamp"),
        6: ("c0", "stream_ids[6]: 'c0' already appears at stream_ids[0]"),
        7: ("c4", "seqs[7] (stream 'c4'): must be an integer"),
        8: ("c5", "values[8] (stream 'c5'): has 1 values, the model takes 2"),
    }
    assert set(errors) == set(expected)
    for i, (sid, fragment) in expected.items():
        assert errors[i]["stream_id"] == sid and fragment in errors[i]["message"], errors[i]
    after = states(client, [*IDS, "fresh", "c4", "c5"])
    assert after["c2"] == before["c2"] and after["c3"] == before["c3"]
    assert after["c4"] == after["c5"] == 404
    assert after["c0"]["count"] == after["c1"]["count"] == 2 and after["fresh"]["count"] == 1


def binary_post(c: httpx.Client, header: Any, raw: bytes, length: str | None = None) -> Any:
    head = json.dumps(header).encode()
    headers = {
        "content-type": "application/octet-stream",
        "inference-header-content-length": length or str(len(head)),
    }
    return c.post(COLUMNS, content=head + raw, headers=headers)


def tensor(name: str, datatype: str, shape: list[Any], size: int, **more: Any) -> dict:
    return {
        "name": name,
        "datatype": datatype,
        "shape": shape,
        "parameters": {"binary_data_size": size},
        **more,
    }


def test_bad_binary_columnar_requests_fail_whole_and_change_nothing(
    models_dir: Path, client: httpx.Client
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)
    start(client, seconds, values)
    before = states(client, IDS)
    n = values.shape[1]
    ids = b"".join(struct.pack("<I", len(s)) + s.encode() for s in IDS[:1])
    ts = struct.pack("<d", seconds[1])
    x = values[1].astype("<f4").tobytes()
    good = [
        tensor("stream_ids", "BYTES", [1], len(ids)),
        tensor("ts", "FP64", [1], 8),
        tensor("values", "FP32", [1, n], 4 * n),
    ]

    def swap(k: int, t: dict) -> dict:
        inputs = list(good)
        inputs[k] = t
        return {"inputs": inputs}

    cases: list[tuple[str, Any, bytes, str | None, str]] = [
        # Regression: numpy's product of [2^32, 2^32] wrapped to 0, then reshape was a 500.
        (
            "overflowing shape",
            swap(2, tensor("values", "FP32", [2**32, 2**32], 0)),
            ids + ts,
            None,
            "inputs[2]: 0 bytes, the shape needs 18446744073709551616 elements",
        ),
        # Regression: a shape of no elements with dimensions numpy cannot make was a 500.
        (
            "empty but huge shape",
            swap(1, tensor("ts", "FP64", [0, 2**62], 0)),
            ids + x,
            None,
            "ts: shape [0, 4611686018427387904], want [1] or [1]",
        ),
        (
            "empty but huge values",
            swap(2, tensor("values", "FP32", [0, 2**40, 2**40], 0)),
            ids + ts,
            None,
            "values: shape [0, 1099511627776, 1099511627776], want [1, ",
        ),
        # Regression: tensor parameters that are not an object were a 500.
        (
            "parameters list",
            swap(0, {**good[0], "parameters": [1]}),
            ids + ts + x,
            None,
            "inputs[0].parameters: must be an object",
        ),
        (
            "parameters text",
            swap(1, {**good[1], "parameters": "8"}),
            ids + ts + x,
            None,
            "inputs[1].parameters: must be an object",
        ),
        (
            "parameters typo",
            swap(1, {**good[1], "parameters": {"binary_size": 8}}),
            ids + ts + x,
            None,
            "inputs[1].parameters.binary_size: unknown field",
        ),
        (
            "header parameters list",
            {"inputs": good, "parameters": []},
            ids + ts + x,
            None,
            "parameters: must be an object",
        ),
        (
            "nine dims",
            swap(1, tensor("ts", "FP64", [1] * 9, 8)),
            ids + ts + x,
            None,
            "inputs[1].shape: more than 8 dimensions",
        ),
        (
            "negative dim",
            swap(1, tensor("ts", "FP64", [-1], 8)),
            ids + ts + x,
            None,
            "inputs[1].shape",
        ),
        (
            "values FP64",
            swap(2, tensor("values", "FP64", [1, n], 8 * n)),
            ids + ts + x + x,
            None,
            "inputs[2].datatype: values is FP32",
        ),
        (
            "values size",
            swap(2, tensor("values", "FP32", [1, n], 4 * n - 1)),
            ids + ts + x[:-1],
            None,
            "inputs[2]: 7 bytes",
        ),
        (
            "values shape",
            swap(2, tensor("values", "FP32", [n, 1], 4 * n)),
            ids + ts + x,
            None,
            "values: shape",
        ),
        ("ts shape", swap(1, tensor("ts", "FP64", [1, 1], 8)), ids + ts + x, None, "ts: shape"),
        (
            "ids count",
            swap(0, tensor("stream_ids", "BYTES", [2], len(ids))),
            ids + ts + x,
            None,
            "stream_ids: 1 elements, the shape needs 2",
        ),
        (
            "ids prefix",
            {"inputs": good},
            struct.pack("<I", 2**31) + ids[4:] + ts + x,
            None,
            "stream_ids: element 0 runs past the data",
        ),
        (
            "N = 0",
            {
                "inputs": [
                    tensor("stream_ids", "BYTES", [0], 0),
                    good[1],
                    tensor("values", "FP32", [0, n], 0),
                ]
            },
            ts,
            None,
            "stream_ids: must hold at least one",
        ),
        ("missing values", {"inputs": good[:2]}, ids + ts, None, "the values tensor is required"),
        ("tensor twice", {"inputs": [*good, good[1]]}, ids + ts + x + ts, None, "inputs[3].name"),
        ("truncated", {"inputs": good}, ids + ts + x[:-2], None, "past the end of the body"),
        ("extra bytes", {"inputs": good}, ids + ts + x + b"\x00", None, "1 bytes after"),
        (
            "header length text",
            {"inputs": good},
            ids + ts + x,
            "ten",
            "Inference-Header-Content-Length",
        ),
        (
            "header length negative",
            {"inputs": good},
            ids + ts + x,
            "-5",
            "Inference-Header-Content-Length",
        ),
        (
            "header length too long",
            {"inputs": good},
            ids + ts + x,
            "99999",
            "Inference-Header-Content",
        ),
        ("header not an object", [], b"", None, "JSON object"),
        # Regression: the stream_ids tensor's shape, datatype and a second source of
        # data were not checked (ids silently taken from "data" alone).
        (
            "ids data vs shape",
            swap(0, {"name": "stream_ids", "datatype": "BYTES", "shape": [3], "data": IDS[:1]}),
            ts + x,
            None,
            "inputs[0].data: 1 elements, the shape needs 3",
        ),
        (
            "ids 2-D",
            swap(0, tensor("stream_ids", "BYTES", [1, 1], len(ids))),
            ids + ts + x,
            None,
            "stream_ids is BYTES of shape [n]",
        ),
        (
            "ids FP32",
            swap(0, tensor("stream_ids", "FP32", [1], len(ids))),
            ids + ts + x,
            None,
            "stream_ids is BYTES of shape [n]",
        ),
        (
            "ids data and size",
            swap(0, {**good[0], "data": ["c1"]}),
            ids + ts + x,
            None,
            "inputs[0]: give data or binary_data_size, not both",
        ),
    ]
    for label, header, raw, length, fragment in cases:
        r = binary_post(client, header, raw, length)
        assert r.status_code in (400, 422), (label, r.status_code, r.text)
        assert_v1_error(r, r.status_code, fragment, label)
        assert states(client, IDS) == before, label
    # Regression: without the header length a binary body was refused as "not valid JSON".
    body, _ = columns_binary_body(IDS, seconds[1], np.tile(values[1], (4, 1)))
    r = client.post(COLUMNS, content=body, headers={"content-type": "application/octet-stream"})
    assert_v1_error(r, 422, "Inference-Header-Content-Length: required", "no header length")
    assert states(client, IDS) == before


def test_bad_binary_rows_are_refused_alone(models_dir: Path, client: httpx.Client) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)
    start(client, seconds, values)
    before = states(client, IDS)
    rows = np.tile(values[1].astype(np.float32), (6, 1))
    rows[2, 0] = np.inf
    ts = np.full(6, seconds[1])
    ts[3] = np.nan
    seqs = np.array([-1, -1, -1, -1, -7, -1])
    ids = ["c0", "c1", "c2", "c3", "fresh", "c0"]
    body, head = columns_binary_body(ids, ts, rows, seqs=seqs, forecast="none")
    r = client.post(
        COLUMNS,
        content=body,
        headers={
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(head),
        },
    )
    assert r.status_code == 200, r.text
    header = json.loads(r.content[: int(r.headers["inference-header-content-length"])])
    errors = {e["index"]: e["message"] for e in header["parameters"]["errors"]}
    assert set(errors) == {2, 3, 4, 5}, errors
    assert "values[2][0] (stream 'c2')" in errors[2] and "ts[3] (stream 'c3')" in errors[3]
    assert "seqs[4] (stream 'fresh')" in errors[4] and "stream_ids[5]" in errors[5]
    after = states(client, [*IDS, "fresh"])
    assert after["c2"] == before["c2"] and after["c3"] == before["c3"]
    assert after["fresh"] == 404 and after["c0"]["count"] == after["c1"]["count"] == 2


def test_bad_columnar_ws_messages_answer_an_error_and_keep_the_connection(
    models_dir: Path, server: LiveServer, client: httpx.Client
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)
    start(client, seconds, values)
    before = states(client, IDS)
    tick, row = float(seconds[1]), list(values[1])
    bad = [(label, payload) for label, payload, _, _ in request_level_json(tick, row)]
    with connect(f"{server.ws_url}/v1/models/{SENSOR}/stream") as ws:
        for k, (label, payload) in enumerate(bad):
            if isinstance(payload, bytes):
                ws.send(payload.decode())
                answer = json.loads(ws.recv(timeout=30))
                assert answer["status"] == 400, (label, answer)
                continue
            ws.send(json.dumps({**payload, "id": k}))
            answer = json.loads(ws.recv(timeout=30))
            assert answer["id"] == k and answer["status"] in (400, 422), (label, answer)
            assert answer["error"]["message"], label
        ws.send(json.dumps({"stream_ids": IDS, "ts": tick, "values": [row] * 4, "id": "ok"}))
        answer = json.loads(ws.recv(timeout=30))
    assert answer["id"] == "ok" and answer["status"] == [200] * 4, answer
    after = states(client, IDS)
    assert all(after[s]["count"] == before[s]["count"] + 1 for s in IDS)


ELEMENTS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.text(max_size=8),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=2),
    st.just({}),
)


def test_random_columns_never_break_the_service(models_dir: Path, client: httpx.Client) -> None:
    """Random values in random cells of a good request: 200 with one status per row or a
    whole-request 4xx (never a 5xx); a refused row or request changes nothing."""
    seconds, values = held_out(models_dir, SENSOR, 30)
    start(client, seconds, values)
    seen = {"k": 1, "before": states(client, IDS)}

    @settings(
        max_examples=80,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        column=st.sampled_from(["stream_ids", "ts", "seqs", "values", "values_cell"]),
        row=st.integers(0, len(IDS) - 1),
        value=ELEMENTS,
        whole=st.booleans(),
    )
    def check(column: str, row: int, value: Any, whole: bool) -> None:
        k = seen["k"]
        tick = float(seconds[min(k, len(seconds) - 1)])
        body: dict[str, Any] = {
            "stream_ids": list(IDS),
            "ts": [tick] * len(IDS),
            "values": [list(values[k % len(values)])] * len(IDS),
            "forecast": "none",
        }
        if column == "values_cell":
            body["values"] = [list(r) for r in body["values"]]
            body["values"][row][0] = value
        elif whole:
            body[column] = value
        else:
            body.setdefault(column, [None] * len(IDS))
            body[column] = list(body[column])
            body[column][row] = value
        r = client.post(COLUMNS, content=json.dumps(body).encode(), headers=JSON)
        assert r.status_code in (200, 400, 422), (body, r.status_code, r.text)
        now = states(client, IDS)
        if r.status_code != 200:
            assert set(r.json()) == {"error"} and r.json()["error"]["message"], r.text
            assert now == seen["before"], body
            return
        answer = r.json()
        assert len(answer["status"]) == len(IDS)
        failed = {e["index"] for e in answer["errors"]}
        assert failed == {i for i, s in enumerate(answer["status"]) if s != 200}
        for i, sid in enumerate(IDS):
            if i in failed:
                assert now[sid] == seen["before"][sid], (body, sid)
        if len(failed) < len(IDS):
            seen["k"] = k + 1
        seen["before"] = now

    check()
    assert client.get("/healthz").status_code == 200
