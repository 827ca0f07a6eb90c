"""Many series, one model: windows stay inside a series, the graph's per-stream scaling
is what training assumed, and the artifact is judged per series and in aggregate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from training.config import preset
from training.data import DataError
from training.features import Split
from training.global_pipeline import build_global_artifact
from training.global_train import GlobalTrained, stream_statistics, train_global, training_rows
from training.panel import panel_from_frame
from training.resolve import resolve
from training.tiny import TINY_GLOBAL, TINY_SENSORS, tiny_panel_frame
from training.train import Run, _pieces


def _panel(frame: pd.DataFrame | None = None):
    return panel_from_frame(
        tiny_panel_frame() if frame is None else frame,
        name="pedestrian-tiny",
        source="tiny",
        id_column="Sensor",
        time_column="Date_Time",
    )


@pytest.fixture(scope="module")
def tiny_global() -> GlobalTrained:
    return train_global(TINY_GLOBAL, _panel(), progress=False)


def _run(n: int) -> Run:
    empty = np.zeros((n, 1), dtype=np.float32)
    return Run(empty, empty, empty, empty, Split.of(n, 0.15, 0.15))


def test_training_windows_never_cross_a_series_boundary_and_draw_on_every_series():
    runs = [_run(n) for n in (300, 2000, 90, 700)]
    for offset in range(0, 24):
        seg_len, pieces = _pieces(runs, 16, offset)
        assert {k for k, _ in pieces} == {0, 1, 2, 3}
        for k, start in pieces:
            # inside the series' own training part: no row of another series, nor of its
            # own validation or test split
            assert start >= 0 and start + seg_len <= runs[k].split.val
        assert abs(len(pieces) - 16) <= len(runs)  # about `segments` windows in all


def test_one_series_keeps_the_single_series_recipe():
    run = _run(5000)
    seg_len, pieces = _pieces([run], 32, 7)
    assert seg_len == (run.split.val - 7) // 32
    assert pieces == [(0, 7 + seg_len * j) for j in range(32)]


def test_the_graph_scales_each_stream_by_the_statistics_training_assumed(tiny_global):
    model, x = tiny_global.model, tiny_global.xs[0]
    names = list(model.spec.state_shapes())
    start_state, _ = stream_statistics(model, x)
    with torch.no_grad():
        _, _, state = model.steps(torch.from_numpy(x[None, :250]), model.zero_state(1))
    np.testing.assert_allclose(
        state[names.index("stream_stats")][0].numpy(), start_state[250], rtol=1e-5, atol=1e-3
    )
    # A stream's own scale, not the global one: the series differ about 3x in size.
    scales = [stream_statistics(model, xk)[1][-1] for xk in tiny_global.xs]
    assert max(scales) / min(scales) > 2


def test_a_long_lived_stream_streams_like_one_call(tiny_global):
    """20,000 steps in 100-step calls against one call: the running sums do not drift
    (kept as float64 inside the graph and as float32 high + low pairs in the state)."""
    model = tiny_global.model
    x = np.tile(tiny_global.xs[0], (34, 1))[:20_000]
    with torch.no_grad():
        q, a, whole = model.steps(torch.from_numpy(x[None]), model.zero_state(1))
        once = model.to_raw(q[:, -1], a[:, -1])
        state = model.zero_state(1)
        for lo in range(0, len(x), 100):
            q, a, state = model.steps(torch.from_numpy(x[None, lo : lo + 100]), state)
        pieces = model.to_raw(q[:, -1], a[:, -1])
    assert float(((once - pieces).abs() / (1 + once.abs())).max()) < 1e-5
    names = list(model.spec.state_shapes())
    stats = names.index("stream_stats")
    np.testing.assert_allclose(whole[stats].numpy(), state[stats].numpy(), rtol=1e-6, atol=1e-6)


def test_a_series_scaled_up_gets_the_same_forecast_scaled_up(tiny_global):
    """Per-stream scaling: a series 3x as large (about the global mean) gets about 3x the
    forecast, once the stream's statistics outweigh their prior (the network then sees
    the same scaled inputs)."""
    model, x = tiny_global.model, tiny_global.xs[1].copy()
    target = model.spec.target_index
    bigger = x.copy()
    bigger[:, target] = 3.0 * x[:, target] - 2.0 * float(model.x_mean[target])
    with torch.no_grad():
        q1, a1, _ = model.steps(torch.from_numpy(x[None]), model.zero_state(1))
        q3, a3, _ = model.steps(torch.from_numpy(bigger[None]), model.zero_state(1))
        f1 = model.to_raw(q1, a1)[0, -1].numpy()
        f3 = model.to_raw(q3, a3)[0, -1].numpy()
    expected = 3.0 * f1 - 2.0 * float(model.x_mean[target])
    assert np.max(np.abs(f3 - expected)) < 0.1 * np.max(np.abs(expected))


def test_the_artifact_is_evaluated_per_series_and_judged_in_aggregate(tiny_global, tmp_path):
    directory = build_global_artifact(tiny_global, tmp_path)
    scores = json.loads((directory / "report.json").read_text())
    manifest = json.loads((directory / "manifest.json").read_text())
    assert list(scores["series"]) == list(TINY_SENSORS)
    for s in scores["series"].values():
        assert s["baselines"]["seasonal_naive_1d"]["mae"] > 0  # each series' own baseline
        assert s["parity"]["streamed_vs_offline"] <= 1e-4
        assert s["verdict"]["text"]
    origins = [s["origins"] for s in scores["series"].values()]
    maes = [s["model"]["mae"] for s in scores["series"].values()]
    assert scores["model"]["mae"] == pytest.approx(np.average(maes, weights=origins))
    wins = sum(s["verdict"]["beats_all"] for s in scores["series"].values())
    assert manifest["verdict"]["text"].endswith(f"beats every baseline on {wins} of 3")
    assert [s["name"] for s in manifest["state"]][-1] == "stream_stats"
    assert manifest["data"]["id_column"] == "Sensor"
    assert list(manifest["data"]["series"]) == list(TINY_SENSORS)
    report = (directory / "report.md").read_text()
    assert "## Per series" in report and all(f"| {s} |" in report for s in TINY_SENSORS)


def test_bad_panels_are_refused_with_the_reason():
    frame = tiny_panel_frame(500)
    with pytest.raises(DataError, match="no id column 'sensor'"):
        panel_from_frame(frame, name="p", source="p", id_column="sensor", time_column="Date_Time")
    one = frame[frame["Sensor"] == TINY_SENSORS[0]]
    with pytest.raises(DataError, match="holds one series"):
        _panel(one)
    # a series on another grid: every other hour
    two = frame[frame["Sensor"] == TINY_SENSORS[1]].iloc[::2]
    mixed = pd.concat([frame[frame["Sensor"] == TINY_SENSORS[0]], two])
    with pytest.raises(DataError, match="different frequencies"):
        _panel(mixed)
    with pytest.raises(DataError, match="level model"):
        train_global(preset("tiny-stock"), _panel(frame), progress=False)


def test_the_cli_trains_a_global_model_from_a_long_file(tmp_path: Path, capsys):
    from training.__main__ import main

    path = tmp_path / "sensors.csv"
    tiny_panel_frame(400).to_csv(path, index=False)
    code = main(
        [
            "all",
            "--config",
            "tiny-sensor",
            "--seasons",
            "1d",
            "--horizon",
            "6",
            "--dataset",
            str(path),
            "--id-column",
            "Sensor",
            "--time-column",
            "Date_Time",
            "--out",
            str(tmp_path / "models"),
            "--quiet",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "## Per series" in out and "per series: beats every baseline on" in out
    assert (tmp_path / "models" / "sensors" / "1" / "model.onnx").exists()


def test_compare_per_series_without_an_id_column_is_refused(capsys):
    from training.__main__ import main

    assert main(["all", "--config", "tiny-sensor", "--compare-per-series"]) == 2
    assert "--compare-per-series needs --id-column" in capsys.readouterr().err


def test_configs_describes_a_long_file_by_its_shortest_series(tmp_path: Path, capsys):
    from training.__main__ import main

    path = tmp_path / "sensors.csv"
    frame = tiny_panel_frame(1000)
    frame = frame.drop(frame[frame["Sensor"] == TINY_SENSORS[1]].index[:100])  # 900 rows
    frame.to_csv(path, index=False)
    args = ["--dataset", str(path), "--id-column", "Sensor", "--time-column", "Date_Time"]
    assert main(["configs", *args]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"3 series by 'Sensor' ({', '.join(TINY_SENSORS)}): one model")
    assert f"the shortest, sensors[{TINY_SENSORS[1]}]" in out and "(h, 900 rows)" in out
    assert "horizon 24 steps" in out  # derived from the hourly frequency
    # The training windows are sized on every series' rows together, as training does
    # (train_global's resolve), not on the shortest's rows alone.
    panel = _panel(pd.read_csv(path))
    sensor = preset("sensor")
    pooled = resolve(sensor, panel.shortest(), training_rows(sensor, list(panel.series)))[1]
    alone = resolve(sensor, panel.shortest())[1]
    recipe = [n for n in pooled if n.startswith("short series")]
    assert recipe and recipe[0] in out and recipe[0] not in alone
    assert main(["train", *args]) == 2
    assert "works with the commands 'all' and 'configs', not 'train'" in capsys.readouterr().err
