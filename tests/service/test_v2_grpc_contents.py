"""gRPC ModelInfer from a generic client: typed tensor contents (not raw), a uint64
sequence id, requested outputs, and the error statuses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from svc_helpers import SENSOR, LiveServer, held_out, iso, manifest

from service.protocol import grpc_v2_pb2 as pb

INFER = "/inference.GRPCInferenceService/ModelInfer"


def request(seconds: np.ndarray, values: np.ndarray, sid: int) -> pb.ModelInferRequest:
    t, n = values.shape
    req = pb.ModelInferRequest(model_name=SENSOR, id="typed")
    req.parameters["sequence_id"].uint64_param = sid
    x = req.inputs.add(name="INPUT", datatype="FP32", shape=[1, t, n])
    x.contents.fp32_contents.extend(values.astype(np.float32).ravel().tolist())
    ts = req.inputs.add(name="TS", datatype="BYTES", shape=[1, t])
    ts.contents.bytes_contents.extend(iso(s).encode() for s in seconds)
    req.outputs.add(name="FORECAST")
    return req


def test_typed_contents_and_a_uint64_sequence_id(
    models_dir: Path, serve: Callable[..., LiveServer]
) -> None:
    server = serve(grpc_port=0)
    seconds, values = held_out(models_dir, SENSOR, 2)
    sid = 2**64 - 1
    m = manifest(models_dir, SENSOR)
    with grpc.insecure_channel(f"127.0.0.1:{server.app.state.grpc_port}") as channel:
        call = channel.unary_unary(
            INFER,
            request_serializer=pb.ModelInferRequest.SerializeToString,
            response_deserializer=pb.ModelInferResponse.FromString,
        )
        reply = call(request(seconds, values, sid))
        assert reply.id == "typed" and [o.name for o in reply.outputs] == ["FORECAST"]
        assert list(reply.outputs[0].shape) == [1, m["horizon"], len(m["quantiles"])]
        forecast = np.frombuffer(reply.raw_output_contents[0], dtype="<f4")
        with httpx.Client(base_url=server.url) as v1:
            status = v1.get(f"/v1/models/{SENSOR}/streams/{sid}").json()
        assert status["count"] == 2
        np.testing.assert_allclose(forecast, np.ravel(status["forecast"]["values"]), rtol=1e-6)

        bad = request(seconds, values, 7)
        bad.outputs.add(name="NOPE")
        with pytest.raises(grpc.RpcError) as err:
            call(bad)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "[invalid_input] outputs[1].name: unknown output" in str(err.value.details())
        unknown = request(seconds, values, 7)
        unknown.model_name = "nope"
        with pytest.raises(grpc.RpcError) as err:
            call(unknown)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as err:
            channel.unary_unary(
                "/inference.GRPCInferenceService/ModelConfig",
                request_serializer=lambda m: b"",
                response_deserializer=lambda b: b,
            )(None)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
