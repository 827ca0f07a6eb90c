"""The columnar form's checks: bad columns refused whole, bad rows alone and worded with
their row, stream and field, the tenant prefix and quotas per row, the step cap, and the
answer's shape against its schema (over real HTTP)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from svc_helpers import SENSOR, LiveServer, held_out, iso

from service.client import columns_body, columns_of
from service.protocol.schemas import ColumnsAnswer

COLUMNS = f"/v1/models/{SENSOR}/columns"


def _post(c: httpx.Client, body: dict[str, Any] | bytes, **headers: str) -> httpx.Response:
    if isinstance(body, bytes):
        return c.post(
            COLUMNS, content=body, headers={"Content-Type": "application/json", **headers}
        )
    return c.post(COLUMNS, json=body, headers=headers)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"stream_ids": "a"}, "stream_ids: must be a list"),
        ({"stream_ids": []}, "stream_ids: must hold at least one"),
        ({"values": [[1.0, 2.0]]}, "values: has 1 rows, stream_ids has 2"),
        ({"seqs": [1]}, "seqs: has 1 rows"),
        ({"ts": None}, "ts: is required"),
        ({"ts": "yesterday"}, "ts: not an ISO 8601 timestamp"),
        ({"forecast": "some"}, "forecast: must be one of"),
        ({"reset": True}, "reset: unknown field"),
    ],
)
def test_a_bad_column_refuses_the_request_and_names_it(
    client: httpx.Client, change: dict[str, Any], field: str
) -> None:
    body = {"stream_ids": ["a", "b"], "ts": 1401580800, "values": [[1.0, 2.0], [3.0, 4.0]]}
    body.update(change)
    if change.get("ts", 0) is None:
        del body["ts"]
    r = _post(client, body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith(field)
    assert client.get(f"/v1/models/{SENSOR}/streams/a").status_code == 404  # nothing applied


def test_bad_rows_fail_alone_worded_with_row_stream_and_field(
    client: httpx.Client, models_dir: Path
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)
    good = [float(v) for v in values[0]]
    body = {
        "stream_ids": ["ok", "bad id", "str", "big", "seq", "ok", "ts"],
        "ts": [iso(seconds[0])] * 6 + ["not a time"],
        "seqs": [1, 1, 1, 1, -5, 1, 1],
        "values": [good, good, [good[0], "x"], [1e39, 1.0], good, good, good],
        "forecast": "none",
    }
    r = _post(client, body)
    assert r.status_code == 200, r.text
    answer = r.json()
    ColumnsAnswer.model_validate(answer)
    assert answer["status"] == [200, 422, 422, 422, 422, 422, 422]
    assert "forecast" not in answer
    errors = {e["index"]: e for e in answer["errors"]}
    assert errors[1]["stream_id"] is None  # an invalid id is never echoed
    assert errors[1]["message"].startswith("stream_ids[1]: may only hold")
    assert errors[2]["message"] == "values[2][1] (stream 'str'): must be a number or null, got str"
    assert errors[3]["message"].startswith("values[3][0] (stream 'big'): 1e+39 does not fit")
    assert errors[4]["message"].startswith("seqs[4] (stream 'seq'): must be an integer")
    assert errors[5]["message"].startswith("stream_ids[5]: 'ok' already appears at stream_ids[0]")
    assert errors[6]["message"].startswith("ts[6] (stream 'ts'): not an ISO 8601")
    assert answer["seq"][0] == 1 and answer["seq"][2] is None and answer["ts"][3] is None
    for sid in ("str", "big", "seq", "ts"):  # nothing applied for a failed row
        assert client.get(f"/v1/models/{SENSOR}/streams/{sid}").status_code == 404


def test_rows_refused_by_their_streams_are_worded_in_columns(
    client: httpx.Client, models_dir: Path
) -> None:
    """Rows that only the stream's own history refuses (the general path's planner) name
    their column and row, not the row form's fields."""
    seconds, values = held_out(models_dir, SENSOR, 3)
    good = [float(v) for v in values[0]]
    first = {"stream_ids": ["w-ts", "w-seq", "w-first"], "ts": iso(seconds[1]),
             "seqs": [5, 5, None], "values": [good, good, good], "forecast": "none"}  # fmt: skip
    assert _post(client, first).json()["status"] == [200, 200, 200]
    body = {
        "stream_ids": ["w-ts", "w-seq", "w-new"],
        "ts": [iso(seconds[0]), iso(seconds[2]), iso(seconds[2])],
        "seqs": [6, 4, None],  # w-ts: a new seq, but a ts before the stream's last
        "values": [good, good, [None] * len(good)],
        "forecast": "none",
    }
    answer = _post(client, body).json()
    assert answer["status"] == [409, 409, 422], answer
    errors = {e["index"]: e["message"] for e in answer["errors"]}
    assert errors[0].startswith(f"ts[0] (stream 'w-ts'): {iso(seconds[0])} is not after"), errors
    assert errors[1].startswith("stream_ids[1] ('w-seq'): seq 4 goes backwards"), errors
    assert errors[2].startswith("values[2] (stream 'w-new'): the first observation"), errors
    assert all("observations" not in m for m in errors.values())
    state = client.get(f"/v1/models/{SENSOR}/streams/w-ts").json()
    assert state["seq"] == 5  # nothing applied for the refused rows


def test_client_helper_body_and_answer_round_trip(client: httpx.Client, models_dir: Path) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)
    arr = np.array([values[0], values[0] + 1.0], dtype=np.float64)
    ids = ["h0", "h1"]
    r = _post(client, columns_body(ids, seconds[0], arr, np.array([0, 0])))
    assert r.status_code == 200, r.text
    arr = np.array([values[1], values[1]], dtype=np.float64)
    arr[1, 0] = np.nan  # missing: filled from the forecast
    got = columns_of(
        _post(client, columns_body(ids, [iso(seconds[1])] * 2, arr, [1, None])).content
    )
    assert got["status"].tolist() == [200, 200] and got["filled"] == [0, 1]
    assert got["seq"].tolist() == [1, -1]
    assert got["values"].shape[0] == 2 and np.isfinite(got["values"]).all()


def test_step_cap_refuses_the_whole_request_before_any_step(
    serve: Callable[..., LiveServer],
) -> None:
    server = serve(max_steps_per_request=3)
    with httpx.Client(base_url=server.url) as c:
        body = {"stream_ids": list("abcd"), "ts": 1401580800, "values": [[1.0, 2.0]] * 4}
        r = _post(c, body)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_steps"
        assert c.get(f"/v1/models/{SENSOR}/streams/a").status_code == 404
        body = {"stream_ids": list("abc"), "ts": 1401580800, "values": [[1.0, 2.0]] * 3}
        assert _post(c, body).status_code == 200


def test_tenant_prefix_and_quota_per_row(serve: Callable[..., LiveServer], tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    digest = hashlib.sha256(b"acme").hexdigest()
    keys.write_text(f"{digest} scopes=read,write prefix=acme: name=acme max_streams=2\n")
    server = serve(auth_disabled=False, api_keys_file=keys)
    auth = {"Authorization": "Bearer acme"}
    with httpx.Client(base_url=server.url) as c:
        body = {
            "stream_ids": ["acme:1", "globex:1", "acme:2", "acme:3"],
            "ts": 1401580800,
            "values": [[1.0, 2.0]] * 4,
        }
        assert _post(c, body).status_code == 401
        answer = _post(c, body, **auth).json()
        assert answer["status"] == [200, 403, 200, 429]
        errors = {e["index"]: e for e in answer["errors"]}
        assert errors[1]["code"] == "forbidden_stream" and errors[1]["stream_id"] == "globex:1"
        assert errors[3]["code"] == "stream_quota"
        assert c.get(f"/v1/models/{SENSOR}/streams/globex:1", headers=auth).status_code == 403
        # The two it created count against its quota; stepping them again is no creation.
        body["ts"] = 1401580800 + 1800
        assert _post(c, body, **auth).json()["status"] == [200, 403, 200, 429]


def test_ws_columnar_messages_keep_order_and_equal_http(
    serve: Callable[..., LiveServer], models_dir: Path
) -> None:
    import asyncio
    import json

    from websockets.asyncio.client import connect

    seconds, values = held_out(models_dir, SENSOR, 12)
    ws_server, http_server = serve(), serve(snapshot_path="")
    ids = ["w0", "w1", "w2"]

    def body(i: int) -> dict[str, Any]:
        rows = [[float(v) + k for v in values[i]] for k in range(len(ids))]
        return {"stream_ids": ids, "ts": iso(seconds[i]), "seqs": [i] * 3, "values": rows}

    async def run() -> list[dict[str, Any]]:
        async with connect(f"{ws_server.ws_url}/v1/models/{SENSOR}/stream") as ws:
            for i in range(12):  # all sent before any answer is read
                await ws.send(json.dumps({**body(i), "id": i, "forecast": "median"}))
            return [json.loads(await ws.recv()) for _ in range(12)]

    answers = asyncio.run(run())
    assert [a["id"] for a in answers] == list(range(12))  # each stream's steps in order
    with httpx.Client(base_url=http_server.url) as c:
        for i, got in enumerate(answers):
            want = _post(c, {**body(i), "forecast": "median"}).json()
            assert got["status"] == want["status"] == [200, 200, 200]
            assert got["seq"] == [i] * 3 and got["ts"] == want["ts"]
            np.testing.assert_allclose(
                got["forecast"]["median"], want["forecast"]["median"], rtol=1e-5, atol=1e-4
            )


def test_binary_form_equals_json_form(serve: Callable[..., LiveServer], models_dir: Path) -> None:
    from service.client import binary_answer, columns_binary_body

    seconds, values = held_out(models_dir, SENSOR, 3)
    a, b = serve(), serve(snapshot_path="")
    ids = ["b0", "b1", "b2", "bad id"]
    with httpx.Client(base_url=a.url) as ca, httpx.Client(base_url=b.url) as cb:
        for step in range(3):
            arr = np.array([values[step] + k for k in range(4)], dtype=np.float32)
            if step == 2:
                arr[1, 0] = np.nan  # missing
                arr[2, 1] = np.inf  # refused: not finite
            seqs = np.full(4, step, dtype=np.int64)
            raw, head = columns_binary_body(ids, seconds[step], arr, seqs)
            r = ca.post(
                COLUMNS,
                content=raw,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Inference-Header-Content-Length": str(head),
                },
            )
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "application/octet-stream"
            got = binary_answer(r.content, int(r.headers["inference-header-content-length"]))
            rows = [[None if v != v else float(v) for v in row] for row in arr.tolist()]
            rows[2][1] = 1e39 if step == 2 else rows[2][1]  # JSON has no inf: also refused
            want = _post(
                cb, {"stream_ids": ids, "ts": seconds[step], "seqs": [step] * 4, "values": rows}
            ).json()
            assert got["status"].tolist() == want["status"]
            assert got["filled"].tolist() == want["filled"]
            assert [e["index"] for e in got["errors"]] == [e["index"] for e in want["errors"]]
            ok = got["status"] == 200
            assert got["seq"][ok].tolist() == [s for s in want["seq"] if s is not None]
            np.testing.assert_allclose(
                got["forecast"][ok],
                np.array(want["forecast"]["values"], dtype=np.float32)[ok],
                rtol=1e-5,
                atol=1e-4,
            )
            assert np.isnan(got["forecast"][~ok]).all() and np.isnan(got["ts"][~ok]).all()
        r = ca.post(
            COLUMNS,
            content=b'{"inputs": []}',
            headers={
                "Content-Type": "application/octet-stream",
                "Inference-Header-Content-Length": "14",
            },
        )
        assert r.status_code == 422 and "stream_ids tensor is required" in r.text


def test_schema_example_accepted_and_violations_refused_by_both(client: httpx.Client) -> None:
    import copy

    from pydantic import ValidationError

    from service.protocol.bodies import ColumnsBody

    (example,) = ColumnsBody.model_json_schema()["examples"]
    r = _post(client, example)
    assert r.status_code == 200 and r.json()["errors"] == []
    ColumnsAnswer.model_validate(r.json())
    changes: list[tuple[str, Any]] = [
        ("stream_ids", ["a", "b/c"]),
        ("stream_ids", ["a", 7]),
        ("ts", True),
        ("ts", [1401580800, None]),
        ("seqs", [1, -1]),
        ("seqs", [1, True]),
        ("values", [[1.0, 2.0], [3.0, "4"]]),
        ("values", [[1.0, 2.0], "3,4"]),
        ("forecast", "all"),
        ("unknown", 1),
    ]
    for key, value in changes:
        body = copy.deepcopy(example)
        body["seqs"] = [s + 1 for s in body["seqs"]]  # fresh steps: only the change fails
        body[key] = value
        with pytest.raises(ValidationError):
            ColumnsBody.model_validate(body)
        r = _post(client, body)
        # The whole request (a bad column), or the one bad row (its own error).
        refused = r.status_code in (400, 422) or 422 in r.json().get("status", [])
        assert refused, (key, value, r.text)


def test_answer_size_cap_refuses_before_any_work(serve: Callable[..., LiveServer]) -> None:
    server = serve(max_answer_bytes=100_000)
    ids = [f"cap-{k}" for k in range(200)]
    body = {"stream_ids": ids, "ts": 1401580800, "values": [[1.0, 2.0]] * 200}
    with httpx.Client(base_url=server.url) as c:
        r = _post(c, body)  # 200 full forecasts could exceed 100 kB
        assert r.status_code == 413 and r.json()["error"]["code"] == "answer_too_large"
        assert c.get(f"/v1/models/{SENSOR}/streams/cap-0").status_code == 404
        assert _post(c, {**body, "forecast": "none"}).status_code == 200
