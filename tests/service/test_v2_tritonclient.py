"""tritonclient, unmodified, over HTTP (binary and JSON tensors) and gRPC against a real
server: health, metadata, and Triton's sequence extension on our streams."""

from __future__ import annotations

import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as tgrpc
from prometheus_client.parser import text_string_to_metric_families
from svc_helpers import (
    SENSOR,
    STOCK,
    LiveServer,
    design,
    held_out,
    iso,
    manifest,
    offline_forecast,
)
from tritonclient.utils import InferenceServerException
from v2_helpers import MODES, infer, inputs, parameters, triton_client

STREAM = "/v1/models/{model}/streams/{sid}"


@pytest.fixture
def v2server(serve: Callable[..., LiveServer]) -> LiveServer:
    return serve(grpc_port=0)


@pytest.mark.parametrize("mode", ["http-binary", "grpc"])
def test_health_and_metadata(models_dir: Path, v2server: LiveServer, mode: str) -> None:
    m = manifest(models_dir, SENSOR)
    with triton_client(v2server, mode) as client:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(SENSOR) and client.is_model_ready(SENSOR, "1")
        assert not client.is_model_ready(SENSOR, "9")
        assert not client.is_model_ready("no-such-model")
        server_meta = client.get_server_metadata()
        model_meta = client.get_model_metadata(SENSOR)
    if mode == "grpc":
        server_meta = {"name": server_meta.name, "extensions": list(server_meta.extensions)}
        model_meta = {
            "name": model_meta.name,
            "versions": list(model_meta.versions),
            "inputs": [(t.name, t.datatype, list(t.shape)) for t in model_meta.inputs],
            "outputs": [(t.name, t.datatype, list(t.shape)) for t in model_meta.outputs],
        }
    else:
        for key in ("inputs", "outputs"):
            model_meta[key] = [(t["name"], t["datatype"], t["shape"]) for t in model_meta[key]]
    assert {"sequence", "binary_tensor_data"} <= set(server_meta["extensions"])
    n, h, q = len(m["inputs"]), m["horizon"], len(m["quantiles"])
    assert model_meta["name"] == SENSOR and model_meta["versions"] == ["1"]
    assert model_meta["inputs"] == [("INPUT", "FP32", [1, -1, n]), ("TS", "INT64", [1, -1])]
    assert model_meta["outputs"] == [
        ("FORECAST", "FP32", [1, h, q]),
        ("FORECAST_TS", "BYTES", [1, h]),
        ("QUANTILES", "FP32", [q]),
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", [SENSOR, STOCK])
def test_streaming_one_per_infer_matches_v1_and_offline(
    models_dir: Path, v2server: LiveServer, mode: str, name: str
) -> None:
    seconds, values = held_out(models_dir, name, 60)
    x = design(manifest(models_dir, name), seconds, values)
    ts_bytes = name == STOCK  # TS as ISO strings for one model, epoch seconds for the other
    checkpoints = {0, 1, 17, len(seconds) - 1}
    with triton_client(v2server, mode) as client, httpx.Client(base_url=v2server.url) as v1:
        for i in range(len(seconds)):
            params, forecast, stamps = infer(
                client, mode, name, seconds[i : i + 1], values[i : i + 1], ts_bytes,
                sequence_id="v2-held-out", sequence_start=i == 0,
            )  # fmt: skip
            ref = v1.post(
                STREAM.format(model=name, sid="v1-held-out") + "/observations",
                json={"observations": [{"ts": int(seconds[i]), "values": list(values[i])}]},
            ).json()
            assert params["duplicate"] is False and params["filled"] == 0
            assert params["ts"] == ref["ts"]
            np.testing.assert_allclose(forecast, ref["forecast"]["values"], rtol=1e-6, atol=1e-6)
            assert stamps == ref["forecast"]["ts"]
            if i in checkpoints:
                expected = offline_forecast(models_dir, name, x[: i + 1])
                np.testing.assert_allclose(
                    forecast, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()
                )
        status = v1.get(STREAM.format(model=name, sid="v2-held-out")).json()
    assert status["count"] == len(seconds)


@pytest.mark.parametrize("mode", MODES)
def test_retry_is_a_duplicate_and_sequence_end_forgets(
    models_dir: Path, v2server: LiveServer, mode: str
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 4)
    sid = f"retry-{mode}"
    with triton_client(v2server, mode) as client, httpx.Client(base_url=v2server.url) as v1:

        def step(i: int, **kw: Any) -> tuple[dict[str, Any], np.ndarray, list[str]]:
            return infer(client, mode, SENSOR, seconds[i : i + 1], values[i : i + 1],
                         sequence_id=sid, parameters={"sequence_seq": 10 + i}, **kw)  # fmt: skip

        step(0, sequence_start=True)
        first = step(1)
        again = step(1)  # the same request, retried
        assert first[0] == {"ts": again[0]["ts"], "filled": 0, "duplicate": False,
                            "sequence_seq": 11}  # fmt: skip
        assert again[0]["duplicate"] is True and again[0]["sequence_seq"] == 11
        np.testing.assert_array_equal(first[1], again[1])
        assert v1.get(STREAM.format(model=SENSOR, sid=sid)).json()["count"] == 2
        with pytest.raises(InferenceServerException) as backwards:
            infer(client, mode, SENSOR, seconds[0:1], values[0:1], sequence_id=sid,
                  parameters={"sequence_seq": 10})  # fmt: skip
        assert "[out_of_order]" in str(backwards.value)
        assert v1.get(STREAM.format(model=SENSOR, sid=sid)).json()["count"] == 2

        last = step(2, sequence_end=True)
        assert last[0]["duplicate"] is False and last[1].shape == first[1].shape
        assert v1.get(STREAM.format(model=SENSOR, sid=sid)).status_code == 404


@pytest.mark.parametrize("mode", MODES)
def test_integer_sequence_id_start_and_stateless(
    models_dir: Path, v2server: LiveServer, mode: str
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 5)
    with triton_client(v2server, mode) as client, httpx.Client(base_url=v2server.url) as v1:
        big = 2**40 + 5
        for i in range(3):
            infer(client, mode, SENSOR, seconds[i : i + 1], values[i : i + 1], sequence_id=big)
        assert v1.get(STREAM.format(model=SENSOR, sid=str(big))).json()["count"] == 3
        # sequence_start: the stream starts over from these observations.
        restarted = infer(client, mode, SENSOR, seconds[3:5], values[3:5], sequence_id=big,
                          sequence_start=True)  # fmt: skip
        assert v1.get(STREAM.format(model=SENSOR, sid=str(big))).json()["count"] == 2
        # No sequence id: a stateless forecast over the request's history, no stream.
        live = len(v2server.service.models[SENSOR].store)
        stateless = infer(client, mode, SENSOR, seconds[3:5], values[3:5])
        assert len(v2server.service.models[SENSOR].store) == live
        history = [{"ts": int(seconds[i]), "values": list(values[i])} for i in (3, 4)]
        ref = v1.post(f"/v1/models/{SENSOR}/forecast", json={"observations": history}).json()
    np.testing.assert_allclose(stateless[1], ref["forecast"]["values"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(restarted[1], stateless[1], rtol=1e-6, atol=1e-6)
    assert "duplicate" not in stateless[0] and stateless[0]["ts"] == ref["ts"]


@pytest.mark.parametrize("mode", MODES)
def test_errors_keep_our_code_and_change_nothing(
    models_dir: Path, v2server: LiveServer, mode: str
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)
    with triton_client(v2server, mode) as client, httpx.Client(base_url=v2server.url) as v1:
        infer(client, mode, SENSOR, seconds[:1], values[:1], sequence_id="err")
        tensors, _ = inputs(mode, seconds[1:2], values[1:2])
        cases = [
            (lambda: client.infer("no-such-model", tensors, sequence_id="err"),
             "[model_not_found]", 404),
            (lambda: client.infer(SENSOR, tensors, model_version="7", sequence_id="err"),
             "[model_not_found]", 404),
            (lambda: client.infer(SENSOR, tensors[:1], sequence_id="err"), "TS is required", 400),
            (lambda: client.infer(SENSOR, tensors, sequence_id="err",
                                  parameters={"sequence_sq": 3}), "sequence_sq", 400),
        ]  # fmt: skip
        bad = values[1:2].copy()
        bad[0, 0] = np.inf
        for call, text, status in cases:
            with pytest.raises(InferenceServerException) as err:
                call()
            assert text in str(err.value)
            if mode == "grpc":
                expected = "NOT_FOUND" if status == 404 else "INVALID_ARGUMENT"
                assert expected in str(err.value.status())
            else:
                assert err.value.status() == str(status)
        with pytest.raises(InferenceServerException) as err:
            infer(client, mode, SENSOR, seconds[1:2], bad, sequence_id="err")
        # JSON has no infinity: tritonclient's JSON mode sends a literal JSON refuses.
        code = "[malformed_json]" if mode == "http-json" else "[invalid_input] step[0].values[0]"
        assert code in str(err.value)
        assert v1.get(STREAM.format(model=SENSOR, sid="err")).json()["count"] == 1


def test_grpc_stream_infer_answers_in_order_and_reports_errors(
    models_dir: Path, v2server: LiveServer
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 6)
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client = tgrpc.InferenceServerClient(f"127.0.0.1:{v2server.app.state.grpc_port}")
    try:
        client.start_stream(callback=lambda result, error: answers.put((result, error)))
        for i in range(6):
            tensors, _ = inputs("grpc", seconds[i : i + 1], values[i : i + 1])
            if i == 3:
                tensors = tensors[:1]  # one bad request in the middle
            client.async_stream_infer(SENSOR, tensors, sequence_id="streamed", request_id=str(i))
        got = [answers.get(timeout=30) for _ in range(6)]
        client.stop_stream()
    finally:
        client.close()
    for i, (result, error) in enumerate(got):
        if i == 3:
            assert result is None and "TS is required" in str(error)
            continue
        assert error is None
        assert result.get_response().id == str(i)
        assert parameters(result, "grpc")["ts"] == iso(seconds[i])
        assert result.as_numpy("FORECAST").ndim == 3
    with httpx.Client(base_url=v2server.url) as v1:
        status = v1.get(STREAM.format(model=SENSOR, sid="streamed")).json()
        counts = requests_total(v1.get("/metrics").text)
    assert status["count"] == 5
    route = "/inference.GRPCInferenceService/ModelStreamInfer"
    assert counts[(route, "GRPC", "200")] == 5 and counts[(route, "GRPC", "400")] == 1


def test_v2_routes_and_grpc_methods_have_their_own_metric_labels(
    models_dir: Path, v2server: LiveServer
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 1)
    for mode in ("http-binary", "grpc"):
        with triton_client(v2server, mode) as client:
            client.is_server_ready()
            infer(client, mode, SENSOR, seconds, values, sequence_id="metrics")
    with httpx.Client(base_url=v2server.url) as v1:
        assert v1.post("/v2/health/live").status_code == 405  # its route's label, not <unmatched>
        counts = requests_total(v1.get("/metrics").text)
    for key in (
        ("/v2/health/live", "POST", "405"),
        ("/v2/models/{model}/infer", "POST", "200"),
        ("/v2/health/ready", "GET", "200"),
        ("/inference.GRPCInferenceService/ModelInfer", "GRPC", "200"),
        ("/inference.GRPCInferenceService/ServerReady", "GRPC", "200"),
    ):
        assert counts.get(key) == 1, key


def requests_total(text: str) -> dict[tuple[str, str, str], float]:
    """forecast_http_requests_total by (route, method, status)."""
    (family,) = (f for f in text_string_to_metric_families(text)
                 if f.name == "forecast_http_requests")  # fmt: skip
    return {
        (s.labels["route"], s.labels["method"], s.labels["status"]): s.value
        for s in family.samples
        if s.name.endswith("_total")
    }
