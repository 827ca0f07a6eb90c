"""Find, verify and load model artifacts (models/<name>/<version>/, docs/artifact.md).

A broken artifact never stops the service: it is logged and listed with its error in
/v1/models, and the other artifacts are served.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from contract.manifest import MANIFEST_FILE, ManifestError, ServingSpec, validate_manifest
from service.engine.runtime import Runtime

log = logging.getLogger(__name__)


class ArtifactError(Exception):
    """The artifact is unusable; the message says which file/field and why."""


@dataclass
class LoadedModel:
    spec: ServingSpec
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


def read_spec(path: Path) -> ServingSpec:
    """The checked manifest of the version folder `path`, in serving form."""
    manifest_path = path / MANIFEST_FILE
    try:
        content = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise _fail(path, f"{MANIFEST_FILE} is missing") from None
    except (OSError, ValueError) as exc:
        raise _fail(manifest_path, f"unreadable: {exc}") from None
    try:
        spec = ServingSpec.from_manifest(validate_manifest(content))
    except ManifestError as exc:
        raise _fail(manifest_path, f"invalid manifest: {exc}") from None
    if spec.name != path.parent.name or spec.version != path.name:
        raise _fail(
            manifest_path,
            f"manifest says {spec.name}/{spec.version} but it lives in "
            f"{path.parent.name}/{path.name}",
        )
    return spec


def _check_graph(runtime: Runtime, spec: ServingSpec, path: Path) -> None:
    """The graph's inputs and outputs are the ones the manifest names, with its shapes."""
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
    spec = read_spec(path)
    graph_path = path / spec.graph_file
    try:
        model_bytes = graph_path.read_bytes()
    except OSError as exc:
        raise _fail(path, f"cannot read graph file: {exc}") from None
    digest = hashlib.sha256(model_bytes).hexdigest()
    if digest != spec.sha256:
        raise _fail(graph_path, f"sha256 mismatch: file {digest}, manifest {spec.sha256}")
    try:
        runtime = Runtime(
            model_bytes,
            providers,
            intra_op_threads,
            graph_input=spec.graph_input,
            graph_output=spec.graph_output,
            state=spec.state,
            label=spec.name,
        )
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
