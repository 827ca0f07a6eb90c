"""KServe v2 REST from a generic client (plain httpx, the protocol's example bodies): the
answers' shapes, the binary layout by hand, and bad requests (400/404 with our code in
the text, every client string bounded, nothing changed)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from svc_helpers import SENSOR, LiveServer, held_out, iso, manifest

from service.protocol.v2_schemas import V2InferAnswer, V2InferBody, V2ModelMetadata

INFER = f"/v2/models/{SENSOR}/infer"


def body(
    seconds: np.ndarray, values: np.ndarray, sid: str | int | None = "rest", **params: Any
) -> dict[str, Any]:
    t, n = values.shape
    parameters = dict(params)
    if sid is not None:
        parameters["sequence_id"] = sid
    return {
        "id": "42",
        "parameters": parameters,
        "inputs": [
            {"name": "INPUT", "shape": [1, t, n], "datatype": "FP32",
             "data": values.astype(np.float32).reshape(1, t, n).tolist()},
            {"name": "TS", "shape": [1, t], "datatype": "BYTES", "data": [iso(s) for s in seconds]},
        ],
    }  # fmt: skip


def test_health_metadata_and_the_documented_example(
    models_dir: Path, server: LiveServer, client: httpx.Client
) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get(f"/v2/models/{SENSOR}/ready").json() == {"ready": True}
    assert client.get(f"/v2/models/{SENSOR}/versions/1/ready").status_code == 200
    meta = client.get("/v2").json()
    assert meta["name"] == "lstm-forecast" and "sequence" in meta["extensions"]
    model = V2ModelMetadata.model_validate(client.get(f"/v2/models/{SENSOR}/versions/1").json())
    assert model.inputs[0].shape == [1, -1, len(manifest(models_dir, SENSOR)["inputs"])]
    (example,) = V2InferBody.model_json_schema()["examples"]
    r = client.post(INFER, content=json.dumps(example))  # no Content-Type, as tritonclient
    assert r.status_code == 200, r.text
    answer = V2InferAnswer.model_validate(r.json())
    assert answer.id == "42" and [o.name for o in answer.outputs] == ["FORECAST", "FORECAST_TS"]
    assert answer.parameters.duplicate is False and r.headers["content-type"] == "application/json"
    h = manifest(models_dir, SENSOR)["horizon"]
    assert answer.outputs[1].data is not None and len(answer.outputs[1].data) == h


def test_json_answer_matches_v1_and_a_retry_is_a_duplicate(
    models_dir: Path, client: httpx.Client
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 3)
    first = client.post(INFER, json=body(seconds[:2], values[:2], sequence_start=True))
    ref = client.post(
        f"/v1/models/{SENSOR}/streams/ref/observations",
        json={"observations": [{"ts": iso(s), "values": list(v)} for s, v in zip(
            seconds[:2], values[:2], strict=True)]},
    ).json()  # fmt: skip
    assert first.status_code == 200, first.text
    out = {o["name"]: o for o in first.json()["outputs"]}
    assert set(out) == {"FORECAST", "FORECAST_TS", "QUANTILES"}
    forecast = np.asarray(out["FORECAST"]["data"], dtype=np.float32).reshape(
        out["FORECAST"]["shape"]
    )
    np.testing.assert_allclose(forecast[0], ref["forecast"]["values"], rtol=1e-6, atol=1e-6)
    assert out["FORECAST_TS"]["data"] == ref["forecast"]["ts"]
    assert out["QUANTILES"]["data"] == pytest.approx(ref["forecast"]["quantiles"])
    again = client.post(INFER, json=body(seconds[1:2], values[1:2]))
    assert again.json()["parameters"]["duplicate"] is True
    assert again.json()["outputs"] == first.json()["outputs"]


def binary_head(n: int, ts_type: str = "INT64", ts_size: int = 8, **rest: Any) -> bytes:
    """A JSON header for one step in binary mode (INPUT, then TS), plus ``rest``."""
    inputs = [
        {"name": "INPUT", "shape": [1, 1, n], "datatype": "FP32",
         "parameters": {"binary_data_size": 4 * n}},
        {"name": "TS", "shape": [1, 1], "datatype": ts_type,
         "parameters": {"binary_data_size": ts_size}},
    ]  # fmt: skip
    return json.dumps({"inputs": inputs, **rest}).encode()


def test_binary_layout_by_hand(models_dir: Path, client: httpx.Client) -> None:
    seconds, values = held_out(models_dir, SENSOR, 1)
    n = values.shape[1]
    head = binary_head(
        n,
        parameters={"sequence_id": 99},
        outputs=[{"name": "FORECAST_TS", "parameters": {"binary_data": True}},
                 {"name": "FORECAST"}],
    )  # fmt: skip
    raw = head + values.astype("<f4").tobytes() + struct.pack("<q", int(seconds[0]))
    r = client.post(INFER, content=raw, headers={"Inference-Header-Content-Length": str(len(head))})
    assert r.status_code == 200, r.text
    length = int(r.headers["inference-header-content-length"])
    answer = json.loads(r.content[:length])
    ts_out, forecast_out = answer["outputs"]
    assert forecast_out["name"] == "FORECAST" and "data" in forecast_out  # JSON, as asked
    size = ts_out["parameters"]["binary_data_size"]
    assert len(r.content) == length + size
    stamps, data = [], memoryview(r.content)[length:]
    while data:
        (k,) = struct.unpack_from("<I", data)
        stamps.append(bytes(data[4 : 4 + k]).decode())
        data = data[4 + k :]
    h = manifest(models_dir, SENSOR)["horizon"]
    assert len(stamps) == h and stamps[0] > iso(seconds[0])
    assert client.get(f"/v1/models/{SENSOR}/streams/99").json()["count"] == 1


SPEC_EXAMPLE = {  # the protocol's own example request, for a model that is not ours
    "id": "42",
    "inputs": [
        {"name": "input0", "shape": [2, 2], "datatype": "UINT32", "data": [1, 2, 3, 4]},
        {"name": "input1", "shape": [3], "datatype": "BOOL", "data": [True]},
    ],
    "outputs": [{"name": "output0"}],
}


@pytest.mark.parametrize(
    ("path", "payload", "headers", "status", "text"),
    [
        (INFER, SPEC_EXAMPLE, {}, 400, "[invalid_input] inputs[0].datatype"),
        ("/v2/models/nope/infer", SPEC_EXAMPLE, {}, 404, "[model_not_found]"),
        (f"/v2/models/{SENSOR}/versions/2/infer", SPEC_EXAMPLE, {}, 404, "version"),
        ("/v2/models/" + "m" * 300 + "/infer", SPEC_EXAMPLE, {}, 400, "model: longer than 256"),
        (INFER, b"{not json", {}, 400, "[malformed_json]"),
        (INFER, b"{}", {"Inference-Header-Content-Length": "9"}, 400, "Inference-Header"),
        (INFER, "SID", {}, 400, "sequence_id: longer than 128"),
        (INFER, "PARAM", {}, 400, "parameters.bogus: unknown parameter"),
        (INFER, "SIZE", {"Inference-Header-Content-Length": "HEAD"}, 400, "past the end"),
        (INFER, "SHAPE", {}, 400, "INPUT.shape: must be [1, T, "),
        (INFER, "ID", {}, 400, "id: longer than 256"),
        (INFER, {"k" * 300: 1}, {}, 400, "a field name is longer than 64 characters"),
        ("/v2/models/x/unknown", None, {}, 404, "[not_found] path"),
        ("/v2/health/live", b"{}", {}, 405, "[method_not_allowed]"),
    ],
)
def test_bad_requests_name_the_problem_and_change_nothing(
    models_dir: Path,
    client: httpx.Client,
    path: str,
    payload: Any,
    headers: dict[str, str],
    status: int,
    text: str,
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 1)
    good = body(seconds, values, sid="bad-input")
    if payload == "SID":
        payload = body(seconds, values, sid="s" * 300)
    elif payload == "PARAM":
        payload = body(seconds, values, bogus=1)
    elif payload == "SHAPE":
        payload = good
        payload["inputs"][0]["shape"] = [1, 2, 1]  # as many elements, the wrong shape
    elif payload == "ID":
        payload = {**good, "id": "i" * 300}
    elif payload == "SIZE":
        payload = good
        payload["inputs"][1] = {**payload["inputs"][1], "parameters": {"binary_data_size": 10**6}}
        del payload["inputs"][1]["data"]
    content = payload if isinstance(payload, bytes) or payload is None else json.dumps(payload)
    if isinstance(content, str):
        content = content.encode()
    if headers.get("Inference-Header-Content-Length") == "HEAD":
        headers = {"Inference-Header-Content-Length": str(len(content or b""))}
    method = "GET" if content is None else "POST"
    r = client.request(method, path, content=content, headers=headers)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and text in r.json()["error"]
    assert len(r.text) < 1024  # nothing the client sent is echoed at length
    assert client.get(f"/v1/models/{SENSOR}/streams/bad-input").status_code == 404


def test_not_ready_is_503(serve: Any, own_models: Path) -> None:
    (own_models / SENSOR / "1" / "model.onnx").write_bytes(b"broken")
    server = serve(own_models)
    with httpx.Client(base_url=server.url) as c:
        r = c.get(f"/v2/models/{SENSOR}/ready")
        assert r.status_code == 503 and "[model_unavailable]" in r.json()["error"]
        assert "retry-after" in r.headers


def test_a_header_seen_before_is_checked_against_each_body(
    models_dir: Path, client: httpx.Client
) -> None:
    """tritonclient sends one JSON header for every step of a stream: the service keeps
    what it checked of it, but the values, their sizes and the body's length are each
    request's own."""
    seconds, values = held_out(models_dir, SENSOR, 3)
    n = values.shape[1]
    head = binary_head(n, parameters={"sequence_id": "planned", "binary_data_output": False})
    length = {"Inference-Header-Content-Length": str(len(head))}

    def data(k: int) -> bytes:
        return values[k].astype("<f4").tobytes() + struct.pack("<q", int(seconds[k]))

    for k in range(2):
        r = client.post(INFER, content=head + data(k), headers=length)
        assert r.status_code == 200, r.text
        ref = client.post(
            f"/v1/models/{SENSOR}/streams/planned-ref/observations",
            json={"observations": [{"ts": iso(seconds[k]), "values": values[k].tolist()}]},
        ).json()
        forecast = {o["name"]: o for o in r.json()["outputs"]}["FORECAST"]["data"]
        np.testing.assert_allclose(
            np.reshape(forecast, np.shape(ref["forecast"]["values"])),
            ref["forecast"]["values"], rtol=1e-6, atol=1e-6,
        )  # fmt: skip
    for content, text in (
        (head + data(2)[:-1], "past the end"),  # a byte short
        (head + data(2) + b"xyz", "3 bytes after the tensors' binary data"),
        (
            head + values[2].astype("<f4").tobytes() + struct.pack("<q", -(2**62)),
            "step[0].ts: epoch seconds out of range",
        ),
    ):
        r = client.post(INFER, content=content, headers=length)
        assert r.status_code == 400 and text in r.json()["error"], r.text
    assert client.get(f"/v1/models/{SENSOR}/streams/planned").json()["count"] == 2


def test_requests_of_one_header_shape_each_keep_their_own_parameters(
    models_dir: Path, client: httpx.Client
) -> None:
    """Requests of many streams with one header shape each keep their own id, sequence
    and output default: no request's checked header answers for another's."""
    seconds, values = held_out(models_dir, SENSOR, 3)
    n = values.shape[1]

    def send(sid: str, k: int, **params: Any) -> httpx.Response:
        head = binary_head(n, id=f"req-{sid}-{k}", parameters={"sequence_id": sid, **params})
        data = values[k].astype("<f4").tobytes() + struct.pack("<q", int(seconds[k]))
        return client.post(
            INFER, content=head + data, headers={"Inference-Header-Content-Length": str(len(head))}
        )

    for k in range(2):
        for sid in ("fleet-a", "fleet-b"):
            r = send(sid, k)
            assert r.status_code == 200, r.text
            assert r.json()["id"] == f"req-{sid}-{k}"
    assert client.get(f"/v1/models/{SENSOR}/streams/fleet-a").json()["count"] == 2
    assert client.get(f"/v1/models/{SENSOR}/streams/fleet-b").json()["count"] == 2
    # The parameters are checked on every request, the shared part or not.
    bad = send("fleet-a", 2, sequence_seq=-1)
    assert bad.status_code == 400 and "parameters.sequence_seq" in bad.json()["error"]
    assert client.get(f"/v1/models/{SENSOR}/streams/fleet-a").json()["count"] == 2
    # A sequence_end on the shared header ends that stream alone.
    assert send("fleet-b", 2, sequence_end=True).status_code == 200
    assert client.get(f"/v1/models/{SENSOR}/streams/fleet-b").status_code == 404
    assert client.get(f"/v1/models/{SENSOR}/streams/fleet-a").json()["count"] == 2
    # The output default is the request's: binary here, JSON above.
    r = send("fleet-a", 2, binary_data_output=True)
    assert r.status_code == 200 and "inference-header-content-length" in r.headers


def test_a_planned_header_names_bad_binary_data_as_the_first_parse_does(
    models_dir: Path, client: httpx.Client
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 1)
    n = values.shape[1]
    stamp = iso(seconds[0]).encode()
    ts_raw = struct.pack("<I", len(stamp)) + stamp
    head = binary_head(n, "BYTES", len(ts_raw), parameters={"sequence_id": "planned-bytes"})
    length = {"Inference-Header-Content-Length": str(len(head))}
    x = values[0].astype("<f4").tobytes()
    bad = struct.pack("<I", len(stamp) + 1) + stamp  # claims one byte more than there is
    first = client.post(INFER, content=head + x + bad, headers=length)  # parsed in full
    good = client.post(INFER, content=head + x + ts_raw, headers=length)  # plans the header
    again = client.post(INFER, content=head + x + bad, headers=length)  # the plan's path
    assert good.status_code == 200, good.text
    assert first.status_code == again.status_code == 400
    assert first.json() == again.json()
    assert "inputs[1] binary data: element 0 runs past the data" in again.json()["error"]
