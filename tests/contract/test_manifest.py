"""The manifest model: the committed artifacts validate, the serving view is derived right,
bad manifests are refused naming the field, and docs carry the generated schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from contract.manifest import (
    InputFeature,
    Manifest,
    ManifestError,
    ServingSpec,
    TimeFeature,
    median_index,
    schema_text,
    validate_manifest,
)
from contract.timefeatures import TimeColumn

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = sorted(ROOT.glob("models/*/*/manifest.json"))


def _load(name: str) -> dict:
    return json.loads((ROOT / "models" / name / "1" / "manifest.json").read_text())


def test_the_committed_manifests_validate_unchanged() -> None:
    assert {p.parent.parent.name for p in COMMITTED} >= {"elec-demand", "sp500"}
    for path in COMMITTED:
        raw = json.loads(path.read_text())
        spec = ServingSpec.from_manifest(validate_manifest(raw))
        assert spec.manifest == raw  # what /v1/models shows is what the file says


def test_serving_view_of_a_returns_model() -> None:
    spec = ServingSpec.from_manifest(validate_manifest(_load("sp500")))
    assert spec.features == [0] and spec.n_features == 1
    assert spec.bounds == ((0, 0.0, "close is a price"),)
    assert [(s.name, s.offset, s.size, s.shape) for s in spec.state] == [
        ("h", 0, 32, (1, 32)),
        ("c", 32, 32, (1, 32)),
        ("prev", 64, 2, (2,)),
    ]
    assert spec.state_size == 66
    assert spec.quantiles[spec.median_index] == 0.5
    assert len(spec.mae_by_horizon) == spec.horizon == 5


def test_serving_view_of_a_level_model_with_time_features() -> None:
    raw = _load("elec-demand")
    raw["features"][1]["min_exclusive"] = -40.0
    spec = ServingSpec.from_manifest(validate_manifest(raw))
    assert spec.features == [
        0,
        1,
        TimeColumn(86400.0, "sin"),
        TimeColumn(86400.0, "cos"),
        TimeColumn(604800.0, "sin"),
        TimeColumn(604800.0, "cos"),
    ]
    assert spec.bounds == ((1, -40.0, "min_exclusive of temperature"),)
    assert spec.state_size == 2 * 2 * 64  # h and c [2, 64]
    assert [slot.name for slot in spec.state] == ["h", "c"]
    del raw["evaluation"]["model"]
    assert ServingSpec.from_manifest(validate_manifest(raw)).mae_by_horizon == []


def test_median_index_is_the_quantile_closest_to_a_half() -> None:
    assert median_index([0.1, 0.5, 0.9]) == 1
    assert median_index([0.05, 0.25, 0.45, 0.8]) == 2
    assert median_index([0.25, 0.75]) == 0  # a tie: the first
    assert median_index([0.9]) == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("graph"), r"missing fields \['graph'\]"),
        (lambda m: m["state"][0].pop("output"), r"state\[0\]: missing fields \['output'\]"),
        (lambda m: m["graph"].update(sha256="xyz"), "graph.sha256: String should match"),
        (lambda m: m["features"][2].update(function="tan"), r"features\[2\]\.function: Input"),
        (lambda m: m["features"][3].pop("source"), r"features\[3\]: Unable to extract tag"),
        (lambda m: m["features"][0].update(min_exclusive=float("inf")), "min_exclusive"),
        (lambda m: m["state"][0].update(dtype="float16"), r"state\[0\]\.dtype: Input should"),
        (lambda m: m["state"][1].update(shape=[2, 0]), r"state\[1\]\.shape\[1\]: Input should"),
        (lambda m: m.update(quantiles=[0.1, 1.0]), r"quantiles\[1\]: Input should be less"),
        (lambda m: m.update(horizon=0), "horizon: Input should be greater than or equal to 1"),
        (lambda m: m.update(target="price"), "not at target 'price'"),
        (lambda m: m.update(target_index=5), "target_index 5 is outside inputs"),
        (lambda m: m["features"].pop(1), "features: every input must appear exactly once"),
        (lambda m: m["features"].append(m["features"][0]), "exactly once"),
    ],
)
def test_a_broken_manifest_is_refused_naming_the_field(edit, message: str) -> None:
    raw = copy.deepcopy(_load("elec-demand"))
    edit(raw)
    with pytest.raises(ManifestError, match=message):
        validate_manifest(raw)


def test_what_training_writes_reads_back_the_same() -> None:
    """Training writes model_dump_json(exclude_unset=True): unset defaults stay unwritten."""
    m = validate_manifest(_load("sp500"))
    built = m.model_copy(
        update={
            "features": [
                InputFeature(name="close", source="input", min_exclusive=0.0),
                TimeFeature(name="dow_sin", source="time", period_seconds=604800, function="sin"),
            ]
        }
    )
    text = built.model_dump_json(indent=2, exclude_unset=True)
    back = json.loads(text)
    assert back["features"][1] == {
        "name": "dow_sin",
        "source": "time",
        "period_seconds": 604800.0,
        "function": "sin",
    }
    assert Manifest.model_validate_json(text) == built


def test_docs_carry_the_generated_schema() -> None:
    committed = (ROOT / "docs" / "manifest.schema.json").read_text()
    assert committed == schema_text(), "regenerate: python -m contract > docs/manifest.schema.json"
    assert "manifest.schema.json" in (ROOT / "docs" / "artifact.md").read_text()
