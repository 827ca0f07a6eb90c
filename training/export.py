"""Export a trained forecaster to the artifact contract (docs/artifact.md) and check it.

The TorchScript-based exporter is used on purpose: it maps nn.LSTM/nn.GRU onto ONNX's own
LSTM/GRU operators, whose sequence axis is dynamic by construction. The dynamo exporter
in torch 2.13 fails on this model and is known to freeze the sequence axis to the example
length on a second export in one process (pytorch#115092). Whatever the exporter, every
dynamic axis is asserted after export and the graph is run at B=1/B>1 and T=1/T>1.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from contract.manifest import (
    MANIFEST_FILE,
    Evaluation,
    Graph,
    InputFeature,
    Manifest,
    Memory,
    StateTensor,
    TimeFeature,
    Verdict,
)
from training.model import Forecaster

OPSET = 18
# Two forecasts (or states) agree when every difference is within this fraction of the
# value's magnitude plus its scale (parity_error).
PARITY_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The exported graph does not honour the contract."""


def state_names(model: Forecaster) -> list[tuple[str, str, str]]:
    """(state name, graph input, graph output) in graph order."""
    return [(n, f"state_{n}", f"state_{n}_out") for n in model.spec.state_shapes()]


def export_onnx(model: Forecaster, path: Path) -> None:
    model.eval()
    states = state_names(model)
    example_x = torch.ones(2, 3, model.spec.n_features)
    inputs = ["x", *[i for _, i, _ in states]]
    outputs = ["forecast", *[o for _, _, o in states]]
    dynamic = {"x": {0: "batch", 1: "time"}, "forecast": {0: "batch"}}
    for _, i, o in states:
        dynamic[i] = {0: "batch"}
        dynamic[o] = {0: "batch"}
    with warnings.catch_warnings():
        # The exporter warns about batch_first LSTMs and its own deprecation; the checks
        # below are what decide whether the graph is right.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example_x, *model.zero_state(2)),
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
        )
    assert_dynamic_axes(path, model)


def assert_dynamic_axes(path: Path, model: Forecaster) -> None:
    graph = onnx.load(str(path)).graph
    shapes = {
        v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*graph.input, *graph.output]
    }
    spec = model.spec
    expected: dict[str, list[object]] = {
        "x": ["batch", "time", spec.n_features],
        "forecast": ["batch", spec.horizon, len(spec.quantiles)],
    }
    for name, i, o in state_names(model):
        shape = list(spec.state_shapes()[name])
        expected[i] = ["batch", *shape]
        expected[o] = ["batch", *shape]
    for name, want in expected.items():
        if shapes.get(name) != want:
            raise ExportError(f"{path.name}: {name} has shape {shapes.get(name)}, want {want}")


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_graph(
    sess: ort.InferenceSession, model: Forecaster, x: np.ndarray, state: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    feeds = {"x": x.astype(np.float32)}
    for (_, i, _), value in zip(state_names(model), state, strict=True):
        feeds[i] = value
    out = sess.run(None, feeds)
    return out[0], out[1:]


def check_parity(model: Forecaster, path: Path, x: np.ndarray) -> dict[str, float]:
    """ORT against PyTorch, and T single steps against one call over T, at B=1 and B>1.

    x: [T, F] real rows; B>1 uses shifted copies so the batch rows differ.
    """
    sess = session(path)
    scales = [forecast_scale(model)] + [1.0] * len(model.spec.state_shapes())
    steps = min(len(x) - 3, 24)
    batch = np.stack([x[:steps], x[1 : steps + 1], x[2 : steps + 2]]).astype(np.float32)
    worst = {"torch_vs_ort": 0.0, "steps_vs_sequence": 0.0}
    for xb in (batch[:1], batch):
        zero = [s.numpy() for s in model.zero_state(len(xb))]
        seq_fc, seq_state = run_graph(sess, model, xb, zero)
        with torch.no_grad():
            ref = model(torch.from_numpy(xb), *[torch.from_numpy(s) for s in zero])
        for mine, theirs, scale in zip([seq_fc, *seq_state], ref, scales, strict=True):
            err = parity_error(mine, theirs.numpy(), scale)
            worst["torch_vs_ort"] = max(worst["torch_vs_ort"], err)
        state = zero
        for t in range(xb.shape[1]):
            step_fc, state = run_graph(sess, model, xb[:, t : t + 1], state)
        for mine, theirs, scale in zip(
            [step_fc, *state], [seq_fc, *seq_state], scales, strict=True
        ):
            err = parity_error(mine, theirs, scale)
            worst["steps_vs_sequence"] = max(worst["steps_vs_sequence"], err)
    for name, err in worst.items():
        if err > PARITY_TOLERANCE:
            raise ExportError(f"parity {name}: relative error {err:.2e} > {PARITY_TOLERANCE}")
    return worst


def forecast_scale(model: Forecaster) -> float:
    """The target's spread in raw units (its training std): what a forecast's float32
    rounding is relative to. A forecast near zero on a series in the thousands (a
    pedestrian count at night) is a difference of terms in the thousands, so its
    rounding is ~1e-4 in absolute terms however right the graph is. No floor in raw
    units: on a series measured in millionths a floor of 1 would pass any error."""
    return float(model.x_std[model.spec.target_index])


def parity_error(a: np.ndarray, b: np.ndarray, scale: float = 1.0) -> float:
    """max |a - b| / (|b| + scale): relative to the value, or to the scale near zero.
    Scaled state is O(1), so its scale is 1."""
    return float(np.max(np.abs(a - b) / (scale + np.abs(b)))) if a.size else 0.0


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def code_revision() -> str:
    """The commit the code came from; '+dirty' when training/ had uncommitted changes."""
    here = Path(__file__).parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], capture_output=True, text=True, check=True, cwd=here)
        return done.stdout.strip()

    try:
        dirty = git("status", "--porcelain", "--", ".")
        return git("rev-parse", "HEAD") + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def manifest(
    model: Forecaster,
    graph_path: Path,
    *,
    name: str,
    version: str,
    frequency: str,
    frequency_seconds: int,
    inputs: list[str],
    target: str,
    features: list[InputFeature | TimeFeature],
    training: dict[str, object],
    data: dict[str, object],
    evaluation: dict[str, object],
    verdict: dict[str, object] | None = None,
) -> Manifest:
    """The artifact's manifest, validated by the same model the service loads it with."""
    spec = model.spec
    return Manifest(
        name=name,
        version=version,
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        code_revision=code_revision(),
        frequency=frequency,
        frequency_seconds=frequency_seconds,
        target=target,
        inputs=inputs,
        target_index=inputs.index(target),
        features=features,
        mode=spec.mode,  # type: ignore[arg-type]  # ForecasterSpec checks it is a mode
        horizon=spec.horizon,
        quantiles=list(spec.quantiles),
        state=[
            StateTensor(
                name=n, input=i, output=o, shape=list(spec.state_shapes()[n]), dtype="float32"
            )
            for n, i, o in state_names(model)
        ],
        graph=Graph(
            file=graph_path.name,
            sha256=sha256(graph_path),
            opset=OPSET,
            exporter=f"torch.onnx (torchscript) {torch.__version__}",
            input="x",
            output="forecast",
        ),
        training=_plain(training),
        data=_plain(data),
        evaluation=Evaluation.model_validate(_plain(evaluation)),
        verdict=Verdict.model_validate(_plain(verdict)) if verdict else None,
        memory=Memory(kind=spec.memory, seasons=list(spec.seasons)),  # type: ignore[arg-type]
        bytes_per_stream=spec.state_bytes(),
    )


def write_manifest(directory: Path, content: Manifest) -> Path:
    path = directory / MANIFEST_FILE
    path.write_text(content.model_dump_json(indent=2, exclude_unset=True) + "\n")
    return path


def _plain(value: dict[str, object]) -> dict[str, Any]:
    """The record as plain JSON types (numpy scalars and tuples become numbers and lists)."""
    return json.loads(json.dumps(value, default=_jsonable))


def _jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
