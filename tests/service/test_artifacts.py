from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from svc_helpers import SENSOR, STOCK

from contract.manifest import Manifest, ServingSpec
from service.engine.artifacts import ArtifactError, discover, load_artifact, read_spec
from training import export


def _copy(models_dir: Path, tmp_path: Path, name: str = SENSOR) -> Path:
    dest = tmp_path / name / "1"
    shutil.copytree(models_dir / name / "1", dest)
    return dest


def _edit_manifest(path: Path, **changes) -> None:
    m = json.loads((path / "manifest.json").read_text())
    m.update(changes)
    (path / "manifest.json").write_text(json.dumps(m))


def test_loads_and_describes_state(models_dir: Path) -> None:
    model = load_artifact(models_dir / STOCK / "1", ["CPUExecutionProvider"], 1)
    try:
        assert model.runtime.provider == "CPUExecutionProvider"
        assert [s.name for s in model.spec.state] == ["h", "c", "prev"]
        assert model.spec.state_size == sum(s.size for s in model.spec.state)
        assert model.spec.quantiles[model.spec.median_index] == 0.5
    finally:
        model.runtime.close()


def test_cuda_requested_but_absent_falls_back_to_cpu(models_dir: Path) -> None:
    model = load_artifact(
        models_dir / SENSOR / "1", ["CUDAExecutionProvider", "CPUExecutionProvider"], 1
    )
    model.runtime.close()
    assert model.runtime.provider == "CPUExecutionProvider"


def test_checksum_mismatch(models_dir: Path, tmp_path: Path) -> None:
    path = _copy(models_dir, tmp_path)
    (path / "model.onnx").write_bytes((path / "model.onnx").read_bytes()[:-1])
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        load_artifact(path, ["CPUExecutionProvider"], 1)


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"horizon": None, "quantiles": "x"},
         r"manifest\.json: invalid manifest: horizon: .*integer; quantiles: .*list"),
        ({"name": "other"}, "manifest says other/1"),
        ({"state": [{"name": "h", "input": "state_h", "output": "state_h_out",
                     "shape": [1, 8], "dtype": "float32"}]}, "graph inputs"),
        ({"inputs": ["demand"]}, r"features\[1\] 'temperature' is not in inputs"),
        ({"target_index": 1}, "target_index 1 points at 'temperature', not at target"),
        ({"mode": "prices"}, r"mode: Input should be 'level' or 'returns'"),
        ({"quantiles": [0.9, 0.5, 0.1]}, "quantiles must be ascending"),
        ({"frequency_seconds": 0}, "frequency_seconds: Input should be greater than 0"),
        ({"graph": {"file": "model.onnx"}}, r"graph: missing fields \['sha256', 'opset'"),
        ({"state": []}, "state: List should have at least 1 item"),
        ({"extra": 1}, "extra: Extra inputs are not permitted"),
    ],
)  # fmt: skip
def test_manifest_problems_are_named(
    models_dir: Path, tmp_path: Path, changes: dict, fragment: str
) -> None:
    path = _copy(models_dir, tmp_path)
    _edit_manifest(path, **changes)
    with pytest.raises(ArtifactError, match=fragment):
        load_artifact(path, ["CPUExecutionProvider"], 1)


def test_missing_field(models_dir: Path, tmp_path: Path) -> None:
    path = _copy(models_dir, tmp_path)
    m = json.loads((path / "manifest.json").read_text())
    del m["evaluation"]
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(
        ArtifactError, match=r"manifest\.json: invalid manifest: missing fields \['evaluation'\]"
    ):
        load_artifact(path, ["CPUExecutionProvider"], 1)


def test_a_misspelt_or_bad_feature_is_named(models_dir: Path, tmp_path: Path) -> None:
    path = _copy(models_dir, tmp_path, STOCK)
    m = json.loads((path / "manifest.json").read_text())
    m["features"][0]["min_exlusive"] = m["features"][0].pop("min_exclusive")
    (path / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match=r"features\[0\]\.min_exlusive: Extra inputs"):
        read_spec(path)
    (path / "manifest.json").write_text("[]")
    with pytest.raises(ArtifactError, match="invalid manifest: not a JSON object"):
        read_spec(path)
    (path / "manifest.json").write_text("{")
    with pytest.raises(ArtifactError, match=r"manifest\.json: unreadable"):
        read_spec(path)
    (path / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match=r"manifest\.json is missing"):
        read_spec(path)


def test_training_writes_what_the_loader_reads(models_dir: Path) -> None:
    """One Manifest class on both sides: training builds it, the service validates with it."""
    assert export.Manifest is Manifest
    for name in (SENSOR, STOCK):
        path = models_dir / name / "1"
        written = Manifest.model_validate_json((path / "manifest.json").read_text())
        spec = read_spec(path)
        assert spec == ServingSpec.from_manifest(written)
        assert spec.manifest == json.loads((path / "manifest.json").read_text())


def test_discover_serves_highest_good_version(models_dir: Path, tmp_path: Path) -> None:
    _copy(models_dir, tmp_path)
    v2 = tmp_path / SENSOR / "2"
    shutil.copytree(models_dir / SENSOR / "1", v2)
    _edit_manifest(v2, version="2")
    v3 = tmp_path / SENSOR / "3"
    v3.mkdir()
    serving, found = discover(tmp_path, ["CPUExecutionProvider"], 1)
    try:
        assert serving[SENSOR].spec.version == "2"
        assert [getattr(f, "error", None) is None for f in found] == [True, True, False]
    finally:
        for f in found:
            runtime = getattr(f, "runtime", None)
            if runtime is not None:
                runtime.close()
