"""Find, verify and load model artifacts (models/<name>/<version>/, docs/artifact.md).

A broken artifact never stops the service: it is logged and listed with its error in
/v1/models, and the other artifacts are served.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.runtime import Runtime

log = logging.getLogger(__name__)

_REQUIRED = (
    "name", "version", "created", "code_revision", "frequency", "frequency_seconds",
    "target", "inputs", "target_index", "features", "horizon", "quantiles", "state",
    "graph", "training", "data", "evaluation",
)  # fmt: skip
_REQUIRED_GRAPH = ("file", "sha256", "opset", "exporter", "input", "output")


class ArtifactError(Exception):
    """The artifact is unusable; the message says which file/field and why."""


@dataclass(frozen=True)
class StateEntry:
    name: str
    input: str
    output: str
    shape: tuple[int, ...]
    offset: int  # first column in the flat per-stream state row
    size: int


@dataclass(frozen=True)
class TimeFeature:
    period: float
    fn: str


@dataclass
class ModelSpec:
    """What the service needs from a manifest, checked and in ready-to-use form."""

    name: str
    version: str
    frequency: str
    frequency_seconds: float
    target: str
    inputs: list[str]
    target_index: int
    # Per graph feature, either an index into the client's inputs or a TimeFeature.
    features: list[int | TimeFeature]
    horizon: int
    quantiles: list[float]
    median_index: int
    state: list[StateEntry]
    state_size: int
    graph_input: str
    graph_output: str
    sha256: str
    mae_by_horizon: list[float]
    manifest: dict[str, Any] = field(repr=False)
    mode: str = "level"
    # Inputs with a manifest "min_exclusive": (input index, bound, why), checked on parse.
    bounds: tuple[tuple[int, float, str], ...] = ()

    @property
    def n_features(self) -> int:
        return len(self.features)


@dataclass
class LoadedModel:
    spec: ModelSpec
    runtime: Runtime
    path: Path


@dataclass
class BrokenModel:
    name: str
    version: str
    path: Path
    error: str


def _fail(path: Path, message: str) -> ArtifactError:
    return ArtifactError(f"{path}: {message}")


def parse_manifest(manifest: Any, path: Path) -> ModelSpec:
    mpath = path / "manifest.json"
    if not isinstance(manifest, dict):
        raise _fail(mpath, "manifest is not a JSON object")
    missing = [k for k in _REQUIRED if k not in manifest]
    if missing:
        raise _fail(mpath, f"missing fields {missing}")
    graph = manifest["graph"]
    if not isinstance(graph, dict):
        raise _fail(mpath, "graph: not an object")
    missing = [k for k in _REQUIRED_GRAPH if k not in graph]
    if missing:
        raise _fail(mpath, f"graph: missing fields {missing}")
    try:
        inputs = [str(n) for n in manifest["inputs"]]
        target_index = int(manifest["target_index"])
        if not 0 <= target_index < len(inputs) or inputs[target_index] != manifest["target"]:
            raise ValueError("target_index does not point at target in inputs")
        features: list[int | TimeFeature] = []
        bounds: list[tuple[int, float, str]] = []
        mode = str(manifest.get("mode", "level"))
        if mode not in ("level", "returns"):
            raise ValueError(f"mode must be 'level' or 'returns', not {mode!r}")
        seen_inputs: list[str] = []
        for i, feat in enumerate(manifest["features"]):
            source = feat["source"]
            if source == "input":
                if feat["name"] not in inputs:
                    raise ValueError(f"features[{i}] {feat['name']!r} is not in inputs")
                features.append(inputs.index(feat["name"]))
                seen_inputs.append(feat["name"])
                if feat.get("min_exclusive") is not None:
                    low = float(feat["min_exclusive"])
                    if not math.isfinite(low):
                        raise ValueError(f"features[{i}]: min_exclusive must be finite")
                    bounds.append((inputs.index(feat["name"]), low, feat["name"]))
            elif source == "time":
                period = float(feat["period_seconds"])
                fn = feat["function"]
                if not (period > 0 and math.isfinite(period)) or fn not in ("sin", "cos"):
                    raise ValueError(f"features[{i}]: bad period_seconds or function")
                features.append(TimeFeature(period, fn))
            else:
                raise ValueError(f"features[{i}]: unknown source {source!r}")
        if sorted(seen_inputs) != sorted(inputs):
            raise ValueError("every input must appear exactly once in features")
        horizon = int(manifest["horizon"])
        quantiles = [float(q) for q in manifest["quantiles"]]
        if horizon < 1 or not quantiles or quantiles != sorted(quantiles):
            raise ValueError("horizon must be >= 1 and quantiles non-empty and sorted")
        median_index = min(range(len(quantiles)), key=lambda j: abs(quantiles[j] - 0.5))
        state: list[StateEntry] = []
        offset = 0
        for j, entry in enumerate(manifest["state"]):
            shape = tuple(int(d) for d in entry["shape"])
            if entry.get("dtype", "float32") != "float32" or any(d < 1 for d in shape):
                raise ValueError(f"state[{j}]: only float32 with positive dims is served")
            size = math.prod(shape)
            state.append(
                StateEntry(str(entry["name"]), entry["input"], entry["output"], shape, offset, size)
            )
            offset += size
        if not state:
            raise ValueError("state: at least one state tensor is needed")
        freq_seconds = float(manifest["frequency_seconds"])
        if not (freq_seconds > 0 and math.isfinite(freq_seconds)):
            raise ValueError("frequency_seconds must be positive")
        evaluation = manifest.get("evaluation") or {}
        mae = (evaluation.get("model") or {}).get("mae_by_horizon") or []
        return ModelSpec(
            name=str(manifest["name"]),
            version=str(manifest["version"]),
            frequency=str(manifest["frequency"]),
            frequency_seconds=freq_seconds,
            target=str(manifest["target"]),
            inputs=inputs,
            target_index=target_index,
            features=features,
            horizon=horizon,
            quantiles=quantiles,
            median_index=median_index,
            state=state,
            state_size=offset,
            graph_input=str(graph["input"]),
            graph_output=str(graph["output"]),
            sha256=str(graph["sha256"]).lower(),
            mae_by_horizon=[float(v) for v in mae],
            manifest=manifest,
            mode=mode,
            bounds=tuple(
                (j, low, f"{name} is a price" if mode == "returns" else f"min_exclusive of {name}")
                for j, low, name in bounds
            ),
        )
    except ArtifactError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(mpath, f"invalid manifest: {exc!r}") from None


def _check_graph(runtime: Runtime, spec: ModelSpec, path: Path) -> None:
    inputs, outputs = runtime.io_names()
    want_in = [spec.graph_input] + [s.input for s in spec.state]
    want_out = [spec.graph_output] + [s.output for s in spec.state]
    if sorted(inputs) != sorted(want_in):
        raise _fail(path, f"graph inputs {sorted(inputs)} do not match manifest {want_in}")
    missing = [o for o in want_out if o not in outputs]
    if missing:
        raise _fail(path, f"graph outputs {missing} named in the manifest are missing")
    x_shape = inputs[spec.graph_input]
    if len(x_shape) != 3 or (isinstance(x_shape[2], int) and x_shape[2] != spec.n_features):
        raise _fail(path, f"graph input x has shape {x_shape}, manifest has F={spec.n_features}")
    for entry in spec.state:
        shape = inputs[entry.input]
        fixed = [d for d in shape[1:] if isinstance(d, int)]
        if len(shape) != len(entry.shape) + 1 or (
            len(fixed) == len(entry.shape) and tuple(fixed) != entry.shape
        ):
            raise _fail(
                path, f"state input {entry.input} has shape {shape}, manifest {entry.shape}"
            )
    fc = outputs[spec.graph_output]
    if (
        len(fc) != 3
        or (isinstance(fc[1], int) and fc[1] != spec.horizon)
        or (isinstance(fc[2], int) and fc[2] != len(spec.quantiles))
    ):
        raise _fail(path, f"forecast output has shape {fc}, manifest H={spec.horizon}")


def load_artifact(path: Path, providers: list[str], intra_op_threads: int) -> LoadedModel:
    manifest_path = path / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise _fail(path, "manifest.json is missing") from None
    except (OSError, ValueError) as exc:
        raise _fail(manifest_path, f"unreadable: {exc}") from None
    spec = parse_manifest(manifest, path)
    if spec.name != path.parent.name or spec.version != path.name:
        raise _fail(
            manifest_path,
            f"manifest says {spec.name}/{spec.version} but it lives in "
            f"{path.parent.name}/{path.name}",
        )
    graph_path = path / str(manifest["graph"]["file"])
    try:
        model_bytes = graph_path.read_bytes()
    except OSError as exc:
        raise _fail(path, f"cannot read graph file: {exc}") from None
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != spec.sha256:
        raise _fail(graph_path, f"sha256 mismatch: file {digest}, manifest {spec.sha256}")
    try:
        runtime = Runtime(model_bytes, spec, providers, intra_op_threads)
    except Exception as exc:
        raise _fail(graph_path, f"onnxruntime cannot load it: {exc}") from None
    try:
        _check_graph(runtime, spec, path)
    except ArtifactError:
        runtime.close()
        raise
    return LoadedModel(spec=spec, runtime=runtime, path=path)


def _version_key(version: str) -> tuple[int, int | str]:
    return (1, int(version)) if version.isdigit() else (0, version)


def discover(
    models_dir: Path, providers: list[str], intra_op_threads: int
) -> tuple[dict[str, LoadedModel], list[LoadedModel | BrokenModel]]:
    """Load every <name>/<version>/ under models_dir.

    Returns the model served per name (its highest loadable version) and every version
    found, loaded or broken, for /v1/models.
    """
    found: list[LoadedModel | BrokenModel] = []
    serving: dict[str, LoadedModel] = {}
    if not models_dir.is_dir():
        log.error("models directory %s does not exist", models_dir)
        return serving, found
    for name_dir in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        versions = sorted(
            (p for p in name_dir.iterdir() if p.is_dir()), key=lambda p: _version_key(p.name)
        )
        for version_dir in versions:
            try:
                model = load_artifact(version_dir, providers, intra_op_threads)
            except ArtifactError as exc:
                log.error("refusing artifact: %s", exc)
                found.append(BrokenModel(name_dir.name, version_dir.name, version_dir, str(exc)))
                continue
            log.info(
                "loaded %s/%s on %s", model.spec.name, model.spec.version, model.runtime.provider
            )
            found.append(model)
            previous = serving.get(model.spec.name)
            if previous is not None:
                previous.runtime.close()  # an older version is listed but not served
            serving[model.spec.name] = model
    return serving, found
