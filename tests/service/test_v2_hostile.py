"""Hostile KServe v2 requests over a real server (REST JSON, REST binary, gRPC unary and
streaming): each is a 400 / INVALID_ARGUMENT in the protocol's error shape with our
stable code and the field it is about, the stream it names is unchanged, and the server
answers a good request afterwards. Table-driven cases for the known-bad inputs, then a
bounded, derandomised hypothesis run of random values at every field of a good body."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from svc_helpers import SENSOR, LiveServer, held_out, iso

from service.protocol import grpc_v2_pb2 as pb

INFER = f"/v2/models/{SENSOR}/infer"
SID = "hostile"


def good(seconds: np.ndarray, values: np.ndarray, sid: Any = SID, **params: Any) -> dict:
    t, n = values.shape
    return {
        "parameters": {"sequence_id": sid, **params},
        "inputs": [
            {
                "name": "INPUT",
                "shape": [1, t, n],
                "datatype": "FP32",
                "data": values.astype(np.float32).ravel().tolist(),
            },
            {"name": "TS", "shape": [1, t], "datatype": "INT64", "data": [int(s) for s in seconds]},
        ],
    }


def state(c: httpx.Client, sid: str = SID) -> Any:
    r = c.get(f"/v1/models/{SENSOR}/streams/{sid}")
    return r.json() if r.status_code == 200 else r.status_code


def with_(body: dict, path: tuple[Any, ...], value: Any) -> dict:
    """A deep copy of body with the field at path set to value."""
    out = json.loads(json.dumps(body))
    at = out
    for key in path[:-1]:
        at = at[key]
    at[path[-1]] = value
    return out


def assert_v2_error(
    r: httpx.Response,
    fragment: str,
    label: str,
    codes: tuple[str, ...] = ("[invalid_input] ", "[malformed_json] "),
) -> None:
    assert r.status_code == 400, (label, r.status_code, r.text)
    error = r.json()
    assert set(error) == {"error"} and isinstance(error["error"], str), label
    assert error["error"].startswith(codes), (label, error)
    assert fragment in error["error"], (label, error["error"])
    assert len(r.text) < 1024, label  # nothing the client sent is echoed at length


def json_cases(g: dict) -> list[tuple[str, Any, str]]:
    """(label, body, a fragment the error must hold) for JSON bodies."""
    x, ts = g["inputs"]
    return [
        # Regression: an unhashable datatype was a 500 (a lookup in a frozenset).
        ("datatype list", with_(g, ("inputs", 0, "datatype"), ["FP32"]), "inputs[0].datatype"),
        ("datatype object", with_(g, ("inputs", 1, "datatype"), {}), "inputs[1].datatype"),
        # Regression: falsy parameters of the wrong type were taken for "none".
        ("parameters list", with_(g, ("parameters",), []), "parameters: must be an object"),
        ("parameters zero", with_(g, ("parameters",), 0), "parameters: must be an object"),
        (
            "output parameters list",
            {**g, "outputs": [{"name": "FORECAST", "parameters": []}]},
            "outputs[0].parameters: must be an object",
        ),
        # Regression: a string sequence_id outside the stream id rule made a stream that
        # /v1 cannot address.
        (
            "sid with a slash",
            with_(g, ("parameters", "sequence_id"), "a/b c"),
            "parameters.sequence_id: may only hold",
        ),
        ("sid NUL", with_(g, ("parameters", "sequence_id"), "\u0000"), "parameters.sequence_id"),
        ("sid non-ASCII", with_(g, ("parameters", "sequence_id"), "ü"), "parameters.sequence_id"),
        ("sid too long", with_(g, ("parameters", "sequence_id"), "s" * 129), "longer than 128"),
        ("sid bool", with_(g, ("parameters", "sequence_id"), True), "got bool"),
        ("sid float", with_(g, ("parameters", "sequence_id"), 1.5), "got float"),
        ("sid negative", with_(g, ("parameters", "sequence_id"), -3), "unsigned 64-bit"),
        ("sid 2^64", with_(g, ("parameters", "sequence_id"), 2**64), "parameters.sequence_id"),
        ("seq negative", with_(g, ("parameters", "sequence_seq"), -1), "sequence_seq"),
        ("seq 2^62", with_(g, ("parameters", "sequence_seq"), 2**62), "sequence_seq"),
        ("seq string", with_(g, ("parameters", "sequence_seq"), "5"), "sequence_seq"),
        ("start string", with_(g, ("parameters", "sequence_start"), "true"), "sequence_start"),
        ("end number", with_(g, ("parameters", "sequence_end"), 1), "sequence_end"),
        # Regression: the unused parameters took any value.
        ("priority object", with_(g, ("parameters", "priority"), {"a": 1}), "parameters.priority"),
        ("timeout negative", with_(g, ("parameters", "timeout"), -1), "parameters.timeout"),
        ("seq without sid", with_(g, ("parameters",), {"sequence_seq": 3}), "need a sequence_id"),
        (
            "unknown parameter",
            with_(g, ("parameters", "sequence_idd"), "x"),
            "parameters.sequence_idd",
        ),
        ("negative dim", with_(g, ("inputs", 0, "shape"), [1, -1, 2]), "inputs[0].shape"),
        (
            "overflowing shape",
            with_(g, ("inputs", 0, "shape"), [2**32, 2**32, 0]),
            "inputs[0].data",
        ),
        ("huge dim", with_(g, ("inputs", 0, "shape"), [1, 10**30, 2]), "inputs[0].shape"),
        ("bool dim", with_(g, ("inputs", 0, "shape"), [True, 1, 2]), "inputs[0].shape"),
        ("nine dims", with_(g, ("inputs", 0, "shape"), [1] * 9), "more than 8 dimensions"),
        ("shape vs data", with_(g, ("inputs", 0, "shape"), [1, 2, 1]), "INPUT.shape"),
        (
            "T = 0",
            with_(with_(g, ("inputs", 0, "shape"), [1, 0, 2]), ("inputs", 0, "data"), []),
            "INPUT.shape",
        ),
        (
            "string value",
            with_(g, ("inputs", 0, "data"), ["1"] * len(x["data"])),
            "inputs[0].data[0]",
        ),
        ("float32 overflow", with_(g, ("inputs", 0, "data"), [1e300] * len(x["data"])), "float32"),
        ("float ts", with_(g, ("inputs", 1, "data"), [1.5] * len(ts["data"])), "inputs[1].data[0]"),
        ("ts out of range", with_(g, ("inputs", 1, "data"), [2**63 - 1] * len(ts["data"])), ".ts"),
        (
            "bytes ts not ISO",
            with_(
                with_(g, ("inputs", 1, "datatype"), "BYTES"),
                ("inputs", 1, "data"),
                ["yesterday"] * len(ts["data"]),
            ),
            ".ts",
        ),
        ("too deep data", with_(g, ("inputs", 0, "data"), [[[[[[[[[1.0]]]]]]]]]), "nested deeper"),
        ("duplicate INPUT", {**g, "inputs": [x, ts, x]}, "inputs[2].name: INPUT is given twice"),
        ("missing TS", {**g, "inputs": [x]}, "inputs: TS is required"),
        ("extra input", {**g, "inputs": [x, ts, {**x, "name": "X"}]}, "unknown input 'X'"),
        ("no inputs", {**g, "inputs": []}, "inputs: must be a non-empty list"),
        ("unknown output", {**g, "outputs": [{"name": "STATE"}]}, "outputs[0].name"),
        ("output twice", {**g, "outputs": [{"name": "FORECAST"}] * 2}, "asked for twice"),
        (
            "output binary flag",
            {**g, "outputs": [{"name": "FORECAST", "parameters": {"binary_data": "yes"}}]},
            "outputs[0].parameters.binary_data",
        ),
        (
            "binary_data_output",
            with_(g, ("parameters", "binary_data_output"), 1),
            "binary_data_output",
        ),
        (
            "data and size",
            with_(g, ("inputs", 0, "parameters"), {"binary_data_size": 0}),
            "not both",
        ),
        ("model_name", {**g, "model_name": "other"}, "model_name"),
        ("id object", {**g, "id": {}}, "id: must be a string"),
        ("not JSON", b"{", "[malformed_json]"),
        ("NaN literal", b'{"inputs": [NaN]}', "[malformed_json]"),
        ("not UTF-8", b'{"id": "\xff"}', "[malformed_json]"),
        ("deep JSON", b"[" * 5000 + b"]" * 5000, "[malformed_json]"),
        ("a list", b"[]", "must be a JSON object"),
    ]


def test_hostile_rest_json_bodies_are_400_and_change_nothing(
    models_dir: Path, server: LiveServer, client: httpx.Client
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 4)
    # Regression: sequence_seq 0 for two steps counted the first down to -1, refused as
    # "step[0].seq" rather than naming the parameter the client sent.
    two = good(seconds[2:4], values[2:4], sequence_seq=0)
    assert_v2_error(
        client.post(INFER, json=two),
        "parameters.sequence_seq: numbers the last of 2 observations, so it must be at least 1",
        "seq too small",
    )
    assert client.post(INFER, json=good(seconds[:1], values[:1])).status_code == 200
    before = state(client)
    g = good(seconds[1:2], values[1:2])
    for label, payload, fragment in json_cases(g):
        content = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        assert_v2_error(client.post(INFER, content=content), fragment, label)
        assert state(client) == before, label
    store = server.service.models[SENSOR].store  # ids /v1 could not even name
    assert [store.lookup(sid) for sid in ("a/b c", "\u0000", "ü")] == [None] * 3
    r = client.post(INFER, json=g)
    assert r.status_code == 200, r.text
    assert state(client)["count"] == before["count"] + 1


def binary_request(head: dict, *raw: bytes, length: str | None = None) -> tuple[bytes, dict]:
    text = json.dumps(head).encode()
    return text + b"".join(raw), {"Inference-Header-Content-Length": length or str(len(text))}


def test_hostile_rest_binary_bodies_are_400_and_change_nothing(
    models_dir: Path, client: httpx.Client
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 3)
    n = values.shape[1]
    stamp = iso(seconds[1]).encode()
    x = values[1].astype("<f4").tobytes()
    ts = struct.pack("<I", len(stamp)) + stamp
    last = iso(seconds[2]).encode()

    def head(x_size: int = 4 * n, ts_size: int = len(ts), ts_count: int = 1) -> dict:
        return {
            "parameters": {"sequence_id": SID},
            "inputs": [
                {
                    "name": "INPUT",
                    "shape": [1, 1, n],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": x_size},
                },
                {
                    "name": "TS",
                    "shape": [1, ts_count],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": ts_size},
                },
            ],
        }

    assert client.post(INFER, json=good(seconds[:1], values[:1])).status_code == 200
    # A good request in binary: its header's plan is cached, later bodies still checked.
    planned_body, planned_headers = binary_request(head(), x, ts)
    r = client.post(INFER, content=planned_body, headers=planned_headers)
    assert r.status_code == 200, r.text
    cases: list[tuple[str, tuple[bytes, dict], str]] = [
        ("truncated data", binary_request(head(), x, ts[:-3]), "past the end of the body"),
        ("extra bytes", binary_request(head(), x, ts, b"\x00"), "1 bytes after"),
        (
            "length prefix too large",
            binary_request(head(), x, struct.pack("<I", 2**32 - 1) + stamp),
            "runs past the data",
        ),
        ("truncated prefix", binary_request(head(ts_size=2), x, b"\x01\x00"), "truncated"),
        ("fewer elements", binary_request(head(ts_count=2), x, ts), "1 elements, the shape"),
        (
            "ts not UTF-8",
            binary_request(head(), x, struct.pack("<I", len(stamp)) + b"\xff" * len(stamp)),
            "TS[0][0]: not UTF-8",
        ),
        ("x wrong size", binary_request(head(x_size=4 * n - 1), x[:-1], ts), "bytes, the shape"),
        (
            "infinite value",
            binary_request(head(), np.full(n, np.inf, "<f4").tobytes(), ts),
            "does not fit float32",
        ),
        ("negative size", binary_request(head(x_size=-1), x, ts), "binary_data_size"),
        (
            "header length negative",
            binary_request(head(), x, ts, length="-1"),
            "Inference-Header-Content-Length: must be an integer",
        ),
        (
            "header length not a number",
            binary_request(head(), x, ts, length="12a"),
            "Inference-Header-Content-Length",
        ),
        (
            "header length past the body",
            binary_request(head(), x, ts, length="100000"),
            "Inference-Header-Content-Length",
        ),
        (
            "header length cuts the JSON",
            binary_request(head(), x, ts, length="10"),
            "[malformed_json]",
        ),
        ("planned header, short body", (planned_body[:-1], planned_headers), "past the end"),
        ("planned header, long body", (planned_body + b"\x00", planned_headers), "bytes after"),
    ]
    before = state(client)
    for label, (content, headers), fragment in cases:
        assert_v2_error(client.post(INFER, content=content, headers=headers), fragment, label)
        assert state(client) == before, label
    assert len(last) == len(stamp)  # the same header: the planned path
    after, _ = binary_request(
        head(), values[2].astype("<f4").tobytes(), struct.pack("<I", len(last)) + last
    )
    r = client.post(INFER, content=after, headers=planned_headers)
    assert r.status_code == 200, r.text
    assert state(client)["count"] == before["count"] + 1


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**65), 2**65)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=2)
    ),
    max_leaves=6,
)
PATHS = [
    ("parameters",),
    ("parameters", "sequence_id"),
    ("parameters", "sequence_seq"),
    ("parameters", "sequence_start"),
    ("parameters", "sequence_end"),
    ("parameters", "binary_data_output"),
    ("inputs",),
    ("inputs", 0),
    ("inputs", 0, "name"),
    ("inputs", 0, "shape"),
    ("inputs", 0, "datatype"),
    ("inputs", 0, "data"),
    ("inputs", 0, "parameters"),
    ("inputs", 1, "data"),
    ("inputs", 1, "shape"),
    ("inputs", 1, "datatype"),
    ("outputs",),
    ("id",),
    ("model_name",),
    ("extra",),
]


def test_random_values_at_every_field_never_break_the_service(
    models_dir: Path, client: httpx.Client
) -> None:
    """Any JSON value at any field: 200 or a 400 in the protocol's shape (never a 5xx),
    and a refused request leaves the stream as it was."""
    seconds, values = held_out(models_dir, SENSOR, 2)
    assert client.post(INFER, json=good(seconds[:1], values[:1])).status_code == 200
    g = good(seconds[1:2], values[1:2])
    seen: dict[str, Any] = {"before": state(client)}

    @settings(
        max_examples=120,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(path=st.sampled_from(PATHS), value=JSON_VALUES)
    def check(path: tuple[Any, ...], value: Any) -> None:
        r = client.post(INFER, content=json.dumps(with_(g, path, value)).encode())
        assert r.status_code in (200, 400), (path, value, r.status_code, r.text)
        if r.status_code == 400:
            assert_v2_error(r, "", repr((path, value)))
            assert state(client) == seen["before"], (path, value)
        else:  # e.g. a valid sequence_id of another stream, or sequence_end: re-read
            seen["before"] = state(client)

    check()
    r = client.post(f"/v2/models/{SENSOR}/infer", json=good(seconds[:2], values[:2], "after"))
    assert r.status_code == 200, r.text


GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"
GRPC_STREAM = "/inference.GRPCInferenceService/ModelStreamInfer"


def grpc_request(seconds: np.ndarray, values: np.ndarray, raw: bool = True) -> Any:
    t, n = values.shape
    req = pb.ModelInferRequest(model_name=SENSOR)
    req.parameters["sequence_id"].string_param = SID
    x = req.inputs.add(name="INPUT", datatype="FP32", shape=[1, t, n])
    ts = req.inputs.add(name="TS", datatype="INT64", shape=[1, t])
    stamps = np.asarray(seconds, dtype="<i8")
    if raw:
        req.raw_input_contents.extend([values.astype("<f4").tobytes(), stamps.tobytes()])
    else:
        x.contents.fp32_contents.extend(values.astype(np.float32).ravel().tolist())
        ts.contents.int64_contents.extend(stamps.tolist())
    return req


def grpc_cases(seconds: np.ndarray, values: np.ndarray) -> list[tuple[str, Any, str]]:
    def case(change: Callable[[Any], Any], raw: bool = True) -> Any:
        req = grpc_request(seconds, values, raw)
        change(req)
        return req

    def sid(kind: str, value: Any) -> Callable[[Any], None]:
        return lambda r: setattr(r.parameters["sequence_id"], kind, value)

    return [
        # Regression: the same id rule as REST and /v1.
        ("sid with a slash", case(sid("string_param", "a/b c")), "parameters.sequence_id"),
        ("sid double", case(sid("double_param", 1.5)), "got float"),
        ("sid negative", case(sid("int64_param", -5)), "unsigned 64-bit"),
        ("sid bool", case(sid("bool_param", True)), "got bool"),
        ("raw count", case(lambda r: r.raw_input_contents.pop()), "raw_input_contents: 1 entries"),
        (
            "raw short",
            case(lambda r: r.raw_input_contents.__setitem__(0, b"\x00" * 3)),
            "raw_input_contents[0]: 3 bytes",
        ),
        ("negative dim", case(lambda r: r.inputs[0].shape.__setitem__(1, -1)), "inputs[0].shape"),
        (
            "overflowing shape",
            case(lambda r: r.inputs[0].shape.extend([2**31, 2**31])),
            "raw_input_contents[0]: 8 bytes, the shape needs",
        ),
        (
            "contents count",
            case(lambda r: r.inputs[0].contents.fp32_contents.append(1.0), False),
            "inputs[0].contents",
        ),
        (
            "contents of another type",
            case(lambda r: setattr(r.inputs[1], "datatype", "FP32"), False),
            "inputs[1].contents",
        ),
        ("datatype", case(lambda r: setattr(r.inputs[0], "datatype", "UINT8")), "datatype"),
        (
            "bytes prefix",
            case(
                lambda r: (
                    setattr(r.inputs[1], "datatype", "BYTES"),
                    r.raw_input_contents.__setitem__(1, b"\xff\xff\xff\x7f"),
                )
            ),
            "runs past the data",
        ),
        (
            "seq too small",
            case(lambda r: setattr(r.parameters["sequence_seq"], "int64_param", -1)),
            "sequence_seq",
        ),
        (
            "start as text",
            case(lambda r: setattr(r.parameters["sequence_start"], "string_param", "true")),
            "sequence_start",
        ),
        (
            "unknown parameter",
            case(lambda r: setattr(r.parameters["sequnce_id"], "bool_param", True)),
            "parameters.sequnce_id",
        ),
        (
            "input parameters",
            case(lambda r: setattr(r.inputs[0].parameters["binary_data_size"], "int64_param", 4)),
            "inputs[0].parameters",
        ),
        ("unknown output", case(lambda r: r.outputs.add(name="STATE")), "outputs[0].name"),
        ("long id", case(lambda r: setattr(r, "id", "i" * 300)), "id: longer than 256"),
    ]


def test_hostile_grpc_requests_are_invalid_argument_and_change_nothing(
    models_dir: Path, serve: Callable[..., LiveServer]
) -> None:
    server = serve(grpc_port=0)
    seconds, values = held_out(models_dir, SENSOR, 2)
    with (
        grpc.insecure_channel(f"127.0.0.1:{server.app.state.grpc_port}") as channel,
        httpx.Client(base_url=server.url, timeout=30) as c,
    ):
        call = channel.unary_unary(
            GRPC_INFER,
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        call(grpc_request(seconds[:1], values[:1]), timeout=30)
        before = state(c)
        cases = grpc_cases(seconds[1:2], values[1:2])
        for label, req, fragment in cases:
            try:
                call(req, timeout=30)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (label, exc.code())
                assert str(exc.details()).startswith("[invalid_input] "), (label, exc.details())
                assert fragment in str(exc.details()), (label, exc.details())
            else:
                raise AssertionError(f"{label}: accepted")
            assert state(c) == before, label
        assert server.service.models[SENSOR].store.lookup("a/b c") is None
        # ModelStreamInfer: every bad request answers its own error, in order, and the
        # stream goes on to apply the good one at the end.
        stream = channel.stream_stream(
            GRPC_STREAM,
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelStreamInferResponse.FromString,
        )
        requests = [req for _, req, _ in cases] + [grpc_request(seconds[1:2], values[1:2])]
        replies = list(stream(iter(requests), timeout=60))
        assert len(replies) == len(requests)
        for (label, _, fragment), reply in zip(cases, replies, strict=False):
            assert fragment in reply.error_message, (label, reply.error_message)
        assert replies[-1].error_message == "" and replies[-1].infer_response.outputs
        assert state(c)["count"] == before["count"] + 1


def test_refusals_of_the_stream_path_are_worded_in_v2_terms(
    models_dir: Path, client: httpx.Client
) -> None:
    """Regression: the engine's refusals reached v2 clients in /v1's words
    ("observations[0].ts ... send "reset": true"), fields a v2 request does not have."""
    seconds, values = held_out(models_dir, SENSOR, 2)
    assert client.post(INFER, json=good(seconds[1:2], values[1:2])).status_code == 200
    before = state(client)
    far = good(seconds[1:2] + 1800 * 100, values[1:2])
    r = client.post(INFER, json=far)
    assert_v2_error(r, "step[0].ts: ", "gap", ("[gap_too_large] ",))
    assert "sequence_start: true" in r.json()["error"] and "reset" not in r.json()["error"]
    assert_v2_error(client.post(INFER, json=good(seconds[:1], values[:1])),
                    "step[0]: ", "backwards", ("[out_of_order] ",))  # fmt: skip
    # A refused last step (sequence_end) does not end the sequence: nothing is forgotten.
    end = good(seconds[:1], values[:1], sequence_end=True)
    assert_v2_error(client.post(INFER, json=end), "step[0]: ", "end", ("[out_of_order] ",))
    assert state(client) == before
    # A gap between two steps of one request: both named as steps, mid-message too.
    inside = good(np.array([seconds[1] + 1800, seconds[1] + 1800 * 101]), values[:2])
    r = client.post(INFER, json=inside)
    assert_v2_error(r, "between step[0] and this one", "gap inside", ("[gap_too_large] ",))
    assert r.json()["error"].startswith("[gap_too_large] step[1].ts: ")
    assert "observations" not in r.json()["error"] and "a reset" not in r.json()["error"]
    assert state(client) == before
    far["parameters"]["sequence_start"] = True  # what the message says to do
    r = client.post(INFER, json=far)
    assert r.status_code == 200, r.text
    assert state(client)["count"] == 1


def test_an_empty_outputs_list_asks_for_every_output_over_rest_and_grpc(
    models_dir: Path, serve: Callable[..., LiveServer]
) -> None:
    """gRPC's repeated field cannot tell [] from absent, so REST reads [] as absent too:
    the same request gets the same outputs whichever transport carries it."""
    server = serve(grpc_port=0)
    seconds, values = held_out(models_dir, SENSOR, 1)
    body = {**good(seconds, values, sid=0), "outputs": []}  # stateless: no stream touched
    with (
        grpc.insecure_channel(f"127.0.0.1:{server.app.state.grpc_port}") as channel,
        httpx.Client(base_url=server.url, timeout=30) as c,
    ):
        r = c.post(f"/v2/models/{SENSOR}/infer", json=body)
        assert r.status_code == 200, r.text
        rest_names = [o["name"] for o in r.json()["outputs"]]
        call = channel.unary_unary(
            GRPC_INFER,
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        req = grpc_request(seconds, values)
        del req.parameters["sequence_id"]
        grpc_names = [o.name for o in call(req, timeout=30).outputs]
    assert rest_names == grpc_names == ["FORECAST", "FORECAST_TS", "QUANTILES"]
