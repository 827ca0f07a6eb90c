"""The committed gRPC messages are what protoc makes of the committed .proto, and their
wire format is the protocol's (tritonclient's own copy parses what we send)."""

from __future__ import annotations

from pathlib import Path

from grpc_tools import protoc
from tritonclient.grpc import service_pb2 as triton

from service.protocol import grpc_v2_pb2 as ours

PROTOCOL = Path(__file__).resolve().parents[2] / "service" / "protocol"


def test_generated_messages_are_up_to_date(tmp_path: Path) -> None:
    args = ["protoc", f"-I{PROTOCOL}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}",
            str(PROTOCOL / "grpc_v2.proto")]  # fmt: skip
    assert protoc.main(args) == 0
    for name in ("grpc_v2_pb2.py", "grpc_v2_pb2.pyi"):
        fresh = (tmp_path / name).read_text()
        assert fresh == (PROTOCOL / name).read_text(), f"stale {name}: run make protos"


def test_messages_round_trip_with_the_triton_client_definitions() -> None:
    request = triton.ModelInferRequest(model_name="m", model_version="1", id="7")
    request.parameters["sequence_id"].uint64_param = 2**64 - 1
    request.parameters["sequence_start"].bool_param = True
    request.parameters["ratio"].double_param = 0.5
    request.inputs.add(name="INPUT", datatype="FP32", shape=[1, 1, 2])
    request.raw_input_contents.append(b"\x00" * 8)
    request.outputs.add(name="FORECAST")
    parsed = ours.ModelInferRequest.FromString(request.SerializeToString())
    assert parsed.parameters["sequence_id"].uint64_param == 2**64 - 1
    assert parsed.parameters["ratio"].double_param == 0.5
    assert list(parsed.inputs[0].shape) == [1, 1, 2] and parsed.outputs[0].name == "FORECAST"
    assert parsed.SerializeToString(deterministic=True) == request.SerializeToString(
        deterministic=True
    )  # map entries in key order

    reply = ours.ModelStreamInferResponse(error_message="x")
    reply.infer_response.outputs.add(name="FORECAST_TS", datatype="BYTES", shape=[1, 2])
    back = triton.ModelStreamInferResponse.FromString(reply.SerializeToString())
    assert back.error_message == "x" and back.infer_response.outputs[0].datatype == "BYTES"
    for kind in ("ServerMetadataResponse", "ModelMetadataResponse", "ModelReadyRequest"):
        ours_fields = {(f.name, f.number, f.type) for f in getattr(ours, kind).DESCRIPTOR.fields}
        theirs = {(f.name, f.number, f.type) for f in getattr(triton, kind).DESCRIPTOR.fields}
        assert ours_fields == theirs, kind
