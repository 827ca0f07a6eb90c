"""The Open Inference Protocol (KServe v2) for our models, whatever carries it.

What a v2 request means here, once for REST and gRPC: the tensor names, datatypes and
shapes of a model (from its spec), the request parameters (Triton's sequence
extension), input tensors to observations, and an answer to output tensors. The
codecs (protocol/v2_rest.py, transport/v2_grpc.py) only move bytes in and out of
these; the observations then go through the same checks as /v1's (requests.py).

Tensors (docs/api.md, "Triton/KServe clients"):
- inputs ``INPUT`` FP32 [1, T, n_inputs] (the manifest's inputs in order; NaN or JSON
  null = missing) and ``TS`` [1, T]: INT64 epoch seconds or BYTES ISO 8601;
- outputs ``FORECAST`` FP32 [1, H, Q], ``FORECAST_TS`` BYTES [1, H] (ISO 8601 UTC, as
  /v1) and ``QUANTILES`` FP32 [Q]; seq, duplicate, filled and ts as response parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import metadata
from typing import Any, NamedTuple

import numpy as np
import orjson

from service.errors import InvalidInput, ServiceError
from service.protocol.answers import Body
from service.protocol.requests import (
    MAX_SEQ,
    Obs,
    WireSpec,
    check_stream_id,
    parse_observations,
)
from service.protocol.v2_tensors import Output, Tensor, encode_json_strings

SERVER_NAME = "lstm-forecast"
PLATFORM = "lstm_forecast_onnxruntime"  # a stateful forecaster, not a bare ONNX graph
EXTENSIONS = ("sequence", "binary_tensor_data")
INPUT, TS = "INPUT", "TS"
FORECAST, FORECAST_TS, QUANTILES = "FORECAST", "FORECAST_TS", "QUANTILES"
OUTPUT_NAMES = (FORECAST, FORECAST_TS, QUANTILES)
_ALL_BINARY = tuple((name, True) for name in OUTPUT_NAMES)
_ALL_JSON = tuple((name, False) for name in OUTPUT_NAMES)
MAX_NAME = 256  # every client string we look up or echo (names, versions, ids)
MAX_TS_TEXT = 64  # an ISO 8601 timestamp is ~30 characters
MAX_UINT64 = 2**64
# The request parameters we know; priority and timeout are accepted and not used (one
# request is one step of one stream: nothing to prioritise or time out separately).
PARAMETERS = frozenset(
    ("sequence_id", "sequence_start", "sequence_end", "sequence_seq", "binary_data_output",
     "priority", "timeout")
)  # fmt: skip


def server_metadata() -> Body:
    try:
        version = metadata.version("lstm-forecast")
    except metadata.PackageNotFoundError:  # run from a source tree without installing
        version = "unknown"
    return {"name": SERVER_NAME, "version": version, "extensions": list(EXTENSIONS)}


def bounded(value: object, where: str, limit: int = MAX_NAME) -> str:
    """A client string we may look up, echo or cache: a str of at most ``limit`` chars."""
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidInput(f"{where}: longer than {limit} characters")
    return value


class SequenceParams(NamedTuple):
    """Triton's sequence parameters: the stream, and what to do with it."""

    stream_id: str | None  # None: a stateless forecast over the request's history
    start: bool
    end: bool
    seq: int | None


class InferRequest(NamedTuple):
    id: str
    sequence: SequenceParams
    obs: list[Obs]
    outputs: tuple[tuple[str, bool], ...]  # (name, binary), in the order to answer


def parse_sequence(params: dict[str, Any]) -> tuple[SequenceParams, bool]:
    """(the sequence, binary_data_output) from the request parameters."""
    for key in params:
        if key not in PARAMETERS:
            names = ", ".join(sorted(PARAMETERS))
            raise InvalidInput(f"parameters.{key:.64}: unknown parameter (known: {names})")
    raw_id = params.get("sequence_id", 0)
    stream_id: str | None
    if type(raw_id) is int:
        if not 0 <= raw_id < MAX_UINT64:
            raise InvalidInput("parameters.sequence_id: must be an unsigned 64-bit integer")
        stream_id = str(raw_id) if raw_id else None
    elif isinstance(raw_id, str):
        # A string id is a /v1 stream id (the same characters and length), so the
        # stream it names stays addressable at /v1/models/{m}/streams/{id}; "" = none.
        stream_id = check_stream_id(raw_id, "parameters.sequence_id") if raw_id else None
    else:
        raise InvalidInput(
            "parameters.sequence_id: must be an unsigned 64-bit integer or a string, "
            f"got {type(raw_id).__name__}"
        )
    for key in ("priority", "timeout"):  # not used, but of the protocol's type
        value = params.get(key)
        if value is not None and (type(value) is not int or not 0 <= value < MAX_UINT64):
            raise InvalidInput(
                f"parameters.{key}: must be an unsigned 64-bit integer, got {value!r:.40}"
            )
    start = _flag(params, "sequence_start")
    end = _flag(params, "sequence_end")
    seq = params.get("sequence_seq")
    if seq is not None and (type(seq) is not int or not 0 <= seq < MAX_SEQ):
        raise InvalidInput(
            f"parameters.sequence_seq: must be an integer in [0, 2^62), got {seq!r:.40}"
        )
    if stream_id is None and (start or end or seq is not None):
        raise InvalidInput(
            "parameters: sequence_start, sequence_end and sequence_seq need a sequence_id"
        )
    return SequenceParams(stream_id, start, end, seq), _flag(params, "binary_data_output")


# /v1 fields that head an error message, and what a v2 request calls them.
_V1_HEADS = (
    ("stream_id: ", "parameters.sequence_id: "),
    ('reset: "reset": true', "parameters.sequence_start: true"),
)
# /v1 words anywhere in a message (no stream id can hold "[", " " or a quote).
_V1_WORDS = (
    ("observations[", "step["),
    ("observations: ", "step: "),
    ('"reset": true', "parameters.sequence_start: true"),
    ("which a reset would not skip", "which sequence_start would not skip"),
)


def v2_wording(exc: ServiceError) -> ServiceError:
    """An error of the /v1 path (the engine's plan words a request's observations as
    ``observations[k]`` and its reset as ``"reset": true``) in a v2 request's own terms:
    its steps, as the v2 checks name them (``step[k]``), and ``sequence_start``. The
    same error, reworded; the error itself when nothing needs it."""
    message = exc.message
    for head, ours in _V1_HEADS:
        if message.startswith(head):
            message = ours + message[len(head) :]
            break
    for words, ours in _V1_WORDS:
        message = message.replace(words, ours)
    return exc if message == exc.message else exc.located(message, exc.stream_id)


def _flag(params: dict[str, Any], key: str) -> bool:
    value = params.get(key, False)
    if not isinstance(value, bool):
        raise InvalidInput(f"parameters.{key}: must be true or false, got {type(value).__name__}")
    return value


class V2Model:
    """One served model as the protocol sees it: its tensors, requests and answers."""

    def __init__(
        self, name: str, version: str, n_inputs: int, horizon: int, quantiles: Sequence[float],
        wire: WireSpec,
    ) -> None:  # fmt: skip
        self.name = name
        self.version = version
        self.n_inputs = n_inputs
        self.wire = wire
        q = len(quantiles)
        self.inputs = ((INPUT, "FP32", (1, -1, n_inputs)), (TS, "INT64", (1, -1)))
        self.outputs = (
            (FORECAST, "FP32", (1, horizon, q)),
            (FORECAST_TS, "BYTES", (1, horizon)),
            (QUANTILES, "FP32", (q,)),
        )
        self._quantiles = np.asarray(quantiles, dtype=np.float32)
        # Per model, not per request: each output's (datatype, shape), the metadata body.
        self.output_meta = {name: (datatype, shape) for name, datatype, shape in self.outputs}
        self._metadata = _metadata_body(name, version, self.inputs, self.outputs)
        self._ts_raw: dict[str, bytes] = {}
        # The REST codec's checked JSON headers, by their bytes (protocol/v2_rest.py).
        self.rest_plans: dict[bytes, Any] = {}

    def metadata(self) -> Body:
        return self._metadata

    # -- requests ----------------------------------------------------------------------

    def request(
        self,
        ident: str,
        params: dict[str, Any],
        tensors: list[Tensor],
        outputs: list[tuple[str, bool | None]] | None,
    ) -> InferRequest:
        """Check a decoded request and turn it into observations; ``outputs`` None =
        every output, each (name, binary or None = the request's default)."""
        sequence, binary = parse_sequence(params)
        obs = self.observations(tensors, sequence.seq)
        return InferRequest(ident, sequence, obs, self.choose_outputs(outputs, binary))

    @staticmethod
    def choose_outputs(
        outputs: list[tuple[str, bool | None]] | None, binary: bool
    ) -> tuple[tuple[str, bool], ...]:
        """The outputs to answer, each (name, binary); ``binary``: the request's default
        (its ``binary_data_output`` parameter)."""
        if outputs is None:
            return _ALL_BINARY if binary else _ALL_JSON
        seen: set[str] = set()
        picked = []
        for i, (name, flag) in enumerate(outputs):
            if name not in OUTPUT_NAMES:
                known = ", ".join(OUTPUT_NAMES)
                raise InvalidInput(f"outputs[{i}].name: unknown output {name!r:.64} ({known})")
            if name in seen:
                raise InvalidInput(f"outputs[{i}].name: {name} is asked for twice")
            seen.add(name)
            picked.append((name, binary if flag is None else flag))
        return tuple(picked)

    def observations(self, tensors: list[Tensor], seq: int | None) -> list[Obs]:
        x, ts = self.check_tensors(tensors)
        return self.rows(x.data, ts.data, ts.datatype, x.shape[1], seq)

    def check_tensors(self, tensors: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """(INPUT, TS) once their names, datatypes and shapes are ours."""
        by_name: dict[str, Tensor] = {}
        for i, t in enumerate(tensors):
            if t.name not in (INPUT, TS):
                raise InvalidInput(f"inputs[{i}].name: unknown input {t.name!r:.64} (INPUT, TS)")
            if t.name in by_name:
                raise InvalidInput(f"inputs[{i}].name: {t.name} is given twice")
            by_name[t.name] = t
        for name in (INPUT, TS):
            if name not in by_name:
                raise InvalidInput(f"inputs: {name} is required")
        x, ts = by_name[INPUT], by_name[TS]
        n = self.n_inputs
        if x.datatype != "FP32":
            raise InvalidInput(f"INPUT.datatype: must be FP32, got {x.datatype:.16}")
        if len(x.shape) != 3 or x.shape[0] != 1 or x.shape[2] != n or x.shape[1] < 1:
            raise InvalidInput(f"INPUT.shape: must be [1, T, {n}] with T >= 1, got {list(x.shape)}")
        steps = x.shape[1]
        if ts.datatype not in ("INT64", "BYTES"):
            raise InvalidInput(f"TS.datatype: must be INT64 or BYTES, got {ts.datatype:.16}")
        if ts.shape != (1, steps):
            raise InvalidInput(f"TS.shape: must be [1, {steps}] like INPUT's, got {list(ts.shape)}")
        return x, ts

    def rows(
        self, values: Sequence[Any], stamps: Sequence[Any], ts_type: str, steps: int,
        seq: int | None,
    ) -> list[Obs]:  # fmt: skip
        """The observations of checked tensors' values, through /v1's checks."""
        if ts_type == "BYTES":
            stamps = [_ts_text(b, k) for k, b in enumerate(stamps)]
        n = self.n_inputs
        if seq is not None and seq < steps - 1:  # the first step's seq would be negative
            raise InvalidInput(
                f"parameters.sequence_seq: numbers the last of {steps} observations, so it "
                f"must be at least {steps - 1} (the ones before count down from it), got {seq}"
            )
        raw: list[dict[str, Any]] = []
        for k in range(steps):
            # NaN (v != v) is a missing value, as JSON null is; parse_one checks the rest.
            row = [None if v != v else v for v in values[k * n : (k + 1) * n]]
            o: dict[str, Any] = {"ts": stamps[k], "values": row}
            if seq is not None:  # the last step carries seq; the ones before count down
                o["seq"] = seq - (steps - 1 - k)
            raw.append(o)
        return parse_observations(raw, n, self.wire.max_history, "step", self.wire.bounds)

    # -- answers -----------------------------------------------------------------------

    def answer(self, body: Body, names: Sequence[str]) -> tuple[dict[str, Any], list[Output]]:
        """(response parameters, output tensors) of an answer body of the data plane."""
        forecast = body["forecast"]
        params: dict[str, Any] = {"ts": body["ts"], "filled": body["filled"]}
        if "duplicate" in body:
            params["duplicate"] = body["duplicate"]
        if body.get("seq") is not None:
            params["sequence_seq"] = body["seq"]
        meta = self.output_meta
        out: list[Output] = []
        for name in names:
            datatype, shape = meta[name]
            if name == FORECAST:
                out.append(Output(name, datatype, shape, forecast["values"]))
            elif name == QUANTILES:
                out.append(Output(name, datatype, shape, self._quantiles))
            else:  # the timestamps: /v1's JSON list as it is, and its raw layout
                fragment = forecast["ts"]
                raw = self._raw_ts(body["ts"], fragment)
                out.append(Output(name, datatype, shape, fragment, raw))
        return params, out

    def _raw_ts(self, ts: str, fragment: orjson.Fragment) -> bytes:
        # Many streams answer for the same tick: the raw layout is kept per tick.
        raw = self._ts_raw.get(ts)
        if raw is None:
            if len(self._ts_raw) >= 4096:
                self._ts_raw.clear()
            raw = self._ts_raw[ts] = encode_json_strings(orjson.dumps(fragment))
        return raw


TensorMeta = tuple[str, str, tuple[int, ...]]  # name, datatype, shape


def _metadata_body(
    name: str, version: str, inputs: Sequence[TensorMeta], outputs: Sequence[TensorMeta]
) -> Body:
    def meta(t: TensorMeta) -> Body:
        return {"name": t[0], "datatype": t[1], "shape": list(t[2])}

    return {
        "name": name,
        "versions": [version],
        "platform": PLATFORM,
        "inputs": [meta(t) for t in inputs],
        "outputs": [meta(t) for t in outputs],
    }


def _ts_text(value: object, k: int) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            raise InvalidInput(f"TS[0][{k}]: not UTF-8 text") from None
    if not isinstance(value, str):
        raise InvalidInput(f"TS[0][{k}]: must be an ISO 8601 string, got {type(value).__name__}")
    return bounded(value, f"TS[0][{k}]", MAX_TS_TEXT)
