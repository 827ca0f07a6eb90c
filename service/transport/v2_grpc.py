"""The Open Inference Protocol (KServe v2) over gRPC: GRPCInferenceService on its own
port (FORECAST_GRPC_PORT), grpc.aio in the same process and event loop as the HTTP
server, over the same data plane (and so the same batcher).

The messages come from our own copy of the protocol's definitions
(protocol/grpc_v2.proto, compiled into grpc_v2_pb2); the handlers are registered
here under the protocol's service name, so the method paths are the ones every
KServe v2 / Triton client calls. Like the REST layer this only translates; errors are
errors.render_v2's text with the gRPC status of its HTTP status.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from service.dataplane import DataPlane
from service.errors import Forbidden, InvalidInput, ServiceError, Unauthorized, render_v2
from service.metrics import Metrics
from service.protocol import grpc_v2_pb2 as pb
from service.protocol.access import Principal
from service.protocol.v2 import InferRequest, V2Model, bounded, server_metadata
from service.protocol.v2_tensors import Output, Tensor, decode_raw, elements
from service.transport.auth import KeyStore, authenticate

SERVICE = "inference.GRPCInferenceService"
METHOD = "GRPC"  # the method label of gRPC calls in the request metrics
_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
_CONTENTS = {"FP32": "fp32_contents", "INT64": "int64_contents", "BYTES": "bytes_contents"}
_TENSOR = pb.ModelMetadataResponse.TensorMetadata

Caller = Principal | None  # the key of a call (None: authentication disabled)
Unary = Callable[[Any, Caller], Awaitable[Message]]
# The scope each method needs, as its REST twin in routes.V2_ROUTES (None: open, like
# the probes).
SCOPES: dict[str, str | None] = {
    "ServerLive": None, "ServerReady": None, "ModelReady": "read", "ServerMetadata": "read",
    "ModelMetadata": "read", "ModelInfer": "write", "ModelStreamInfer": "write",
}  # fmt: skip


def route_of(method: str) -> str:
    """The route label of a gRPC method: its path on the wire."""
    return f"/{SERVICE}/{method}"


class V2Grpc:
    def __init__(
        self,
        dataplane: DataPlane,
        metrics: Metrics,
        max_message_bytes: int,
        keys: KeyStore | None = None,
    ) -> None:
        self.dataplane = dataplane
        self.metrics = metrics
        self.max_message = max_message_bytes
        self.keys = keys  # None: authentication disabled

    def _caller(self, method: str, context: grpc.aio.ServicerContext) -> Principal | None:
        """The key in the call's metadata, checked as the HTTP guard checks a header."""
        needed = SCOPES[method]
        if self.keys is None or needed is None:
            return None
        metadata = context.invocation_metadata() or ()
        headers = {
            k.lower().encode("latin-1"): v.encode("latin-1") if isinstance(v, str) else v
            for k, v in metadata
        }
        try:
            return authenticate(self.keys, needed, headers)
        except (Unauthorized, Forbidden) as exc:
            self.metrics.auth_failures.labels(exc.code).inc()
            raise

    def server(self, host: str, port: int) -> tuple[grpc.aio.Server, int]:
        """A grpc.aio server (not started) bound to host:port; (server, bound port)."""
        limit = self.max_message
        server = grpc.aio.server(
            options=[("grpc.max_receive_message_length", limit),
                     ("grpc.max_send_message_length", max(limit, 4 * 1024 * 1024))]
        )  # fmt: skip
        unary: dict[str, tuple[Unary, type[Message]]] = {
            "ServerLive": (self._live, pb.ServerLiveRequest),
            "ServerReady": (self._ready, pb.ServerReadyRequest),
            "ModelReady": (self._model_ready, pb.ModelReadyRequest),
            "ServerMetadata": (self._server_metadata, pb.ServerMetadataRequest),
            "ModelMetadata": (self._model_metadata, pb.ModelMetadataRequest),
            "ModelInfer": (self._infer, pb.ModelInferRequest),
        }
        handlers: dict[str, grpc.RpcMethodHandler] = {
            name: grpc.unary_unary_rpc_method_handler(
                self._measured(name, fn),
                request_deserializer=kind.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )
            for name, (fn, kind) in unary.items()
        }
        handlers["ModelStreamInfer"] = grpc.stream_stream_rpc_method_handler(
            self._stream,
            request_deserializer=pb.ModelInferRequest.FromString,
            response_serializer=lambda m: m.SerializeToString(),
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        bound = server.add_insecure_port(f"{host}:{port}")
        return server, bound

    def _measured(self, name: str, fn: Unary) -> Callable[[Any, Any], Awaitable[Message]]:
        route = route_of(name)
        observe = self.metrics.observe_http

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Message:
            started = time.perf_counter()
            status = 200
            try:
                return await fn(request, self._caller(name, context))
            except Exception as exc:
                status, body, headers = render_v2(exc)
                if headers:
                    context.set_trailing_metadata([(k.lower(), v) for k, v in headers.items()])
                await context.abort(_CODES.get(status, grpc.StatusCode.INTERNAL), body["error"])
                raise  # abort raises; this is never reached
            finally:
                observe(route, METHOD, status, time.perf_counter() - started)

        return call

    # -- health and metadata -------------------------------------------------------

    async def _live(self, request: pb.ServerLiveRequest, who: Caller) -> Message:
        return pb.ServerLiveResponse(live=True)

    async def _ready(self, request: pb.ServerReadyRequest, who: Caller) -> Message:
        return pb.ServerReadyResponse(ready=self.dataplane.registry.ready)

    async def _model_ready(self, request: pb.ModelReadyRequest, who: Caller) -> Message:
        try:
            self.dataplane.v2_model(request.name, request.version)
        except ServiceError:  # unknown, failed or not loaded yet: not ready
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def _server_metadata(
        self, request: pb.ServerMetadataRequest, who: Principal | None
    ) -> Message:
        return pb.ServerMetadataResponse(**server_metadata())

    async def _model_metadata(
        self, request: pb.ModelMetadataRequest, who: Principal | None
    ) -> Message:
        _, v2 = self.dataplane.v2_model(request.name, request.version)
        meta = v2.metadata()
        return pb.ModelMetadataResponse(
            name=meta["name"],
            versions=meta["versions"],
            platform=meta["platform"],
            inputs=[_TENSOR(**t) for t in meta["inputs"]],
            outputs=[_TENSOR(**t) for t in meta["outputs"]],
        )

    # -- inference -------------------------------------------------------------------

    async def _infer(self, request: pb.ModelInferRequest, who: Caller) -> Message:
        model, v2 = self.dataplane.v2_model(request.model_name, request.model_version)
        infer = decode(request, v2)
        answer = await self.dataplane.infer(model, infer, who)
        params, outputs = v2.answer(answer, [name for name, _ in infer.outputs])
        return encode(v2, infer, params, outputs)

    async def _stream(
        self, requests: AsyncIterator[pb.ModelInferRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        """One answer per request, in request order; a failed request answers its error
        and the stream goes on."""
        route = route_of("ModelStreamInfer")
        try:
            who = self._caller("ModelStreamInfer", context)
        except ServiceError as exc:  # refused before reading any request
            status, body, _ = render_v2(exc)
            self.metrics.observe_http(route, METHOD, status, 0.0)
            await context.abort(_CODES[status], body["error"])
        async for request in requests:
            started = time.perf_counter()
            try:
                reply = pb.ModelStreamInferResponse(infer_response=await self._infer(request, who))
                status = 200
            except Exception as exc:
                status, body, _ = render_v2(exc)
                reply = pb.ModelStreamInferResponse(error_message=body["error"])
            self.metrics.observe_http(route, METHOD, status, time.perf_counter() - started)
            yield reply


def decode(request: pb.ModelInferRequest, v2: V2Model) -> InferRequest:
    ident = bounded(request.id, "id")
    params = {key: _value(p) for key, p in request.parameters.items()}
    raw = request.raw_input_contents
    if raw and len(raw) != len(request.inputs):
        raise InvalidInput(
            f"raw_input_contents: {len(raw)} entries for {len(request.inputs)} inputs"
        )
    tensors = []
    for i, t in enumerate(request.inputs):
        where = f"inputs[{i}]"
        name = bounded(t.name, f"{where}.name")
        if t.datatype not in _CONTENTS:
            raise InvalidInput(f"{where}.datatype: must be one of FP32, INT64, BYTES")
        if t.parameters:
            raise InvalidInput(f"{where}.parameters: none are supported")
        count = elements(list(t.shape), f"{where}.shape")
        if raw:
            data = decode_raw(t.datatype, raw[i], count, f"raw_input_contents[{i}]")
        else:
            data = list(getattr(t.contents, _CONTENTS[t.datatype]))
            if len(data) != count:
                raise InvalidInput(
                    f"{where}.contents: {len(data)} elements, the shape needs {count}"
                )
        tensors.append(Tensor(name, t.datatype, tuple(t.shape), data))
    outputs: list[tuple[str, bool | None]] = []
    for i, o in enumerate(request.outputs):
        if any(key != "binary_data" for key in o.parameters):
            raise InvalidInput(f"outputs[{i}].parameters: only binary_data is supported")
        outputs.append((bounded(o.name, f"outputs[{i}].name"), None))
    return v2.request(ident, params, tensors, outputs or None)


def _value(p: pb.InferParameter) -> Any:
    kind = p.WhichOneof("parameter_choice")
    return None if kind is None else getattr(p, kind)


def encode(
    v2: V2Model, request: InferRequest, params: dict[str, Any], outputs: list[Output]
) -> pb.ModelInferResponse:
    """Every output as raw contents (what Triton sends, and tritonclient reads first)."""
    reply = pb.ModelInferResponse(model_name=v2.name, model_version=v2.version, id=request.id)
    for key, value in params.items():
        p = reply.parameters[key]
        if isinstance(value, bool):
            p.bool_param = value
        elif isinstance(value, int):
            p.int64_param = value
        else:
            p.string_param = str(value)
    for o in outputs:
        reply.outputs.add(name=o.name, datatype=o.datatype, shape=o.shape)
        reply.raw_output_contents.append(o.raw_bytes())
    return reply
