"""tritonclient (unmodified) against a live server: clients and one-observation infers
over HTTP (binary or JSON tensors) and gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import tritonclient.grpc as tgrpc
import tritonclient.http as thttp
from svc_helpers import LiveServer, iso

MODES = ("http-binary", "http-json", "grpc")


@contextmanager
def triton_client(server: LiveServer, mode: str) -> Iterator[Any]:
    if mode == "grpc":
        client: Any = tgrpc.InferenceServerClient(f"127.0.0.1:{server.app.state.grpc_port}")
    else:
        client = thttp.InferenceServerClient(f"127.0.0.1:{server.port}")
    try:
        yield client
    finally:
        client.close()


def inputs(
    mode: str, seconds: np.ndarray, values: np.ndarray, ts_bytes: bool = False
) -> tuple[list[Any], list[Any] | None]:
    """(INPUT and TS tensors, requested outputs) for T observations: values [T, n]."""
    lib: Any = tgrpc if mode == "grpc" else thttp
    binary = mode != "http-json"
    x = np.asarray(values, dtype=np.float32)[None]
    tensor_x = lib.InferInput("INPUT", list(x.shape), "FP32")
    if ts_bytes:
        ts = np.array([[iso(s).encode() for s in seconds]], dtype=np.object_)
        tensor_ts = lib.InferInput("TS", list(ts.shape), "BYTES")
    else:
        ts = np.asarray(seconds, dtype=np.int64)[None]
        tensor_ts = lib.InferInput("TS", list(ts.shape), "INT64")
    if mode == "grpc":
        tensor_x.set_data_from_numpy(x)
        tensor_ts.set_data_from_numpy(ts)
        return [tensor_x, tensor_ts], None
    tensor_x.set_data_from_numpy(x, binary_data=binary)
    tensor_ts.set_data_from_numpy(ts, binary_data=binary)
    if binary:
        return [tensor_x, tensor_ts], None  # tritonclient then asks for binary outputs
    outputs = [
        thttp.InferRequestedOutput(name, binary_data=False)
        for name in ("FORECAST", "FORECAST_TS", "QUANTILES")
    ]
    return [tensor_x, tensor_ts], outputs


def infer(
    client: Any,
    mode: str,
    model: str,
    seconds: np.ndarray,
    values: np.ndarray,
    ts_bytes: bool = False,
    **kwargs: Any,
) -> tuple[dict[str, Any], np.ndarray, list[str]]:
    """(response parameters, FORECAST [H, Q], FORECAST_TS) of one infer call."""
    tensors, outputs = inputs(mode, seconds, values, ts_bytes)
    result = client.infer(model, tensors, outputs=outputs, **kwargs)
    return (
        parameters(result, mode),
        result.as_numpy("FORECAST")[0],
        [t.decode() if isinstance(t, bytes) else str(t) for t in result.as_numpy("FORECAST_TS")[0]],
    )


def parameters(result: Any, mode: str) -> dict[str, Any]:
    if mode != "grpc":
        return dict(result.get_response().get("parameters", {}))
    out = {}
    for key, p in result.get_response().parameters.items():
        out[key] = getattr(p, p.WhichOneof("parameter_choice"))
    return out
