"""The exported graph honours the artifact contract (docs/artifact.md)."""

from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import pytest
import torch

from contract.manifest import ServingSpec, validate_manifest
from training import evaluate
from training.export import (
    PARITY_TOLERANCE,
    ExportError,
    assert_dynamic_axes,
    check_parity,
    export_onnx,
    forecast_scale,
    parity_error,
    run_graph,
    session,
    sha256,
)
from training.pipeline import build_artifact, streamed_forecasts


@pytest.fixture(scope="module")
def sensor_artifact(tiny_sensor, tmp_path_factory):
    return build_artifact(tiny_sensor, tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def stock_artifact(tiny_stock, tmp_path_factory):
    return build_artifact(tiny_stock, tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def seasonal_artifact(tiny_seasonal, tmp_path_factory):
    return build_artifact(tiny_seasonal, tmp_path_factory.mktemp("models"))


KINDS = ["sensor", "stock", "seasonal"]


def _trained_and_dir(request, kind):
    trained = request.getfixturevalue(f"tiny_{kind}")
    return trained, request.getfixturevalue(f"{kind}_artifact")


@pytest.mark.parametrize("kind", KINDS)
def test_graph_axes_are_dynamic(request, kind):
    trained, directory = _trained_and_dir(request, kind)
    graph = onnx.load(str(directory / "model.onnx")).graph
    x = next(i for i in graph.input if i.name == "x")
    dims = [d.dim_param or d.dim_value for d in x.type.tensor_type.shape.dim]
    assert dims == ["batch", "time", trained.x.shape[1]]
    assert_dynamic_axes(directory / "model.onnx", trained.model)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("steps", [1, 17])
def test_ort_matches_torch_and_steps_match_the_sequence(request, kind, batch, steps):
    trained, directory = _trained_and_dir(request, kind)
    model, sess = trained.model, session(directory / "model.onnx")
    rows = trained.x[trained.split.test :]
    xb = np.stack([rows[k : k + steps] for k in range(batch)]).astype(np.float32)
    zero = [s.numpy() for s in model.zero_state(batch)]
    seq_fc, seq_state = run_graph(sess, model, xb, zero)
    with torch.no_grad():
        ref = model(torch.from_numpy(xb), *model.zero_state(batch))
    for mine, theirs in zip([seq_fc, *seq_state], ref, strict=True):
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-4, atol=1e-4)
    assert seq_fc.shape == (batch, model.spec.horizon, len(model.spec.quantiles))
    state = zero
    for t in range(steps):
        step_fc, state = run_graph(sess, model, xb[:, t : t + 1], state)
    np.testing.assert_allclose(step_fc, seq_fc, rtol=1e-4, atol=1e-4)
    for a, b in zip(state, seq_state, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert (np.diff(seq_fc, axis=-1) >= 0).all()


def test_a_second_export_in_one_process_keeps_the_time_axis(tiny_sensor, tmp_path):
    """pytorch#115092: the sequence axis came out fixed on a second export."""
    for k in range(2):
        export_onnx(tiny_sensor.model, tmp_path / f"m{k}.onnx")
    sess = session(tmp_path / "m1.onnx")
    zero = [s.numpy() for s in tiny_sensor.model.zero_state(2)]
    fc, _ = run_graph(sess, tiny_sensor.model, tiny_sensor.x[None, :41].repeat(2, 0), zero)
    assert fc.shape[0] == 2


def test_a_broken_graph_fails_the_parity_check(tiny_sensor, tmp_path):
    path = tmp_path / "m.onnx"
    export_onnx(tiny_sensor.model, path)
    other = type(tiny_sensor.model)(tiny_sensor.model.spec)  # a copy whose head differs
    other.load_state_dict(tiny_sensor.model.state_dict(), strict=True)
    with torch.no_grad():
        other.head.bias.add_(1.0)
    with pytest.raises(ExportError, match="torch_vs_ort"):
        check_parity(other, path, tiny_sensor.x[:40])


def test_parity_is_measured_against_the_series_scale(tiny_sensor):
    # A count in the thousands forecast near zero at night: float32 cancellation leaves
    # ~1e-4 in absolute terms (seen at export of a pedestrian model), not a wrong graph.
    offline = np.array([0.1928, 2950.0, 12.5])
    rounded = offline + np.array([1.2e-4, 2.4e-4, 0.0])
    assert parity_error(rounded, offline, scale=1.0) > PARITY_TOLERANCE  # the old measure
    assert parity_error(rounded, offline, scale=900.0) < 1e-6
    # A real difference, a hundredth of the scale, still fails.
    wrong = offline + np.array([9.0, 0.0, 0.0])
    assert parity_error(wrong, offline, scale=900.0) > PARITY_TOLERANCE
    # The scale is the target's training std in raw units, with no floor: on a series
    # measured in millionths an error of a hundredth of its spread still fails.
    model = copy.deepcopy(tiny_sensor.model)
    model.x_std[model.spec.target_index] = 8e-6
    assert forecast_scale(model) == pytest.approx(8e-6)
    tiny = np.array([5e-6, -3e-6])
    assert parity_error(tiny + 8e-8, tiny, scale=forecast_scale(model)) > PARITY_TOLERANCE


def test_a_failed_export_removes_only_what_it_made(tmp_path):
    from training.pipeline import staged

    out = tmp_path / "models"  # a new --out root: this run makes it

    def fails_after_a_concurrent_run_landed(directory):
        (directory / "model.onnx").write_bytes(b"half")
        other = out / "other-model" / "1"  # another run's finished artifact, meanwhile
        other.mkdir(parents=True)
        (other / "manifest.json").write_text("{}")
        raise ExportError("parity")

    with pytest.raises(ExportError):
        staged(out / "mine" / "1", fails_after_a_concurrent_run_landed)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "other-model",
        "other-model/1",
        "other-model/1/manifest.json",
    ]
    with pytest.raises(ExportError):
        staged(tmp_path / "fresh" / "mine" / "1", lambda d: (_ for _ in ()).throw(ExportError()))
    assert not (tmp_path / "fresh").exists()  # alone, it leaves no folder behind


def test_every_parity_check_measures_forecasts_against_the_target_scale(
    tiny_sensor, tmp_path, monkeypatch
):
    """check_parity and the streamed check both pass the target's scale for forecasts
    (and 1 for state): with scale 1 a near-zero forecast of a large series fails."""
    import training.export
    import training.pipeline

    seen: list[float] = []

    def spy(a, b, scale=1.0):
        seen.append(scale)
        return parity_error(a, b, scale)

    monkeypatch.setattr(training.export, "parity_error", spy)
    monkeypatch.setattr(training.pipeline, "parity_error", spy)
    build_artifact(tiny_sensor, tmp_path)
    scale = forecast_scale(tiny_sensor.model)
    states = len(tiny_sensor.model.spec.state_shapes())
    # check_parity: per batch size, torch vs ORT then steps vs sequence, each over the
    # forecast and every state tensor; then the streamed check's forecasts.
    one_check = [scale] + [1.0] * states
    assert seen == one_check * 4 + [scale]


@pytest.mark.parametrize("kind", KINDS)
def test_manifest_carries_the_contract_and_the_checksum(request, kind):
    trained, directory = _trained_and_dir(request, kind)
    m = json.loads((directory / "manifest.json").read_text())
    assert m["graph"]["sha256"] == sha256(directory / "model.onnx")
    assert m["horizon"] == trained.config.horizon
    assert m["quantiles"] == list(trained.config.quantiles)
    assert m["inputs"][m["target_index"]] == m["target"]
    assert [f["name"] for f in m["features"] if f["source"] == "input"] == m["inputs"]
    assert len(m["features"]) == trained.x.shape[1]
    spec = ServingSpec.from_manifest(validate_manifest(m))  # what the service will read
    assert spec.n_features == trained.x.shape[1]
    assert spec.quantiles[spec.median_index] == 0.5 == trained.config.quantiles[1]
    assert spec.state_size == sum(s.numel() for s in trained.model.zero_state(1))
    names = {s["input"] for s in m["state"]}
    graph_inputs = {i.name for i in onnx.load(str(directory / "model.onnx")).graph.input}
    assert graph_inputs == {"x", *names}
    for key in (
        "name",
        "version",
        "created",
        "code_revision",
        "frequency",
        "training",
        "data",
        "evaluation",
    ):
        assert key in m
    assert set(m["data"]["split"]) == {"train", "validation", "test"}
    assert (directory / "report.md").read_text().startswith("# ")
    assert (directory / "forecast.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("kind", KINDS)
def test_streaming_the_test_split_reproduces_the_offline_evaluation(request, kind):
    """One ORT step per test row, state carried, against the offline PyTorch pass."""
    trained, directory = _trained_and_dir(request, kind)
    at = evaluate.origins(trained.split, trained.config.horizon, 1)
    streamed = streamed_forecasts(trained, directory / "model.onnx", at)
    offline = evaluate.model_forecasts(trained.model, trained.x)[at]
    np.testing.assert_allclose(streamed, offline, rtol=1e-4, atol=1e-4 * np.abs(offline).max())
    y = trained.x[:, trained.layout.target_index].astype(np.float64)
    truth = evaluate.actuals(y, at, trained.config.horizon)
    q = tuple(trained.config.quantiles)
    assert evaluate.metrics(streamed, truth, q, 1.0)["mae"] == pytest.approx(
        evaluate.metrics(offline, truth, q, 1.0)["mae"], rel=1e-5
    )
    parity = json.loads((directory / "report.json").read_text())["parity"]
    assert parity["streamed_mae"] == pytest.approx(parity["offline_mae"], rel=1e-5)


def test_time_features_follow_the_manifest_rule(tiny_sensor, sensor_artifact):
    """What the service computes from a timestamp is what the model was trained on."""
    m = json.loads((sensor_artifact / "manifest.json").read_text())
    ts = tiny_sensor.series.frame.index[5]
    seconds = (ts - np.datetime64("1970-01-01T00:00:00")) / np.timedelta64(1, "s")
    for col, feature in enumerate(m["features"]):
        if feature["source"] != "time":
            continue
        angle = 2 * np.pi * (seconds % feature["period_seconds"]) / feature["period_seconds"]
        expected = np.sin(angle) if feature["function"] == "sin" else np.cos(angle)
        assert tiny_sensor.x[5, col] == pytest.approx(expected, abs=1e-6)
