"""The CLI end to end on tiny configs, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "training", *args, "--quiet"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def test_all_trains_evaluates_and_exports(tmp_path):
    done = _cli("all", "--config", "tiny-stock", "--out", "m", "--runs", "r", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    directory = tmp_path / "m" / "tiny-stock" / "1"
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["frequency"] == "B"
    assert "random_walk" in manifest["evaluation"]["baselines"]
    assert "| model |" in done.stdout
    assert (tmp_path / "r" / "tiny-stock.pt").exists()


def test_train_then_evaluate_then_export_from_the_checkpoint(tmp_path):
    assert _cli("train", "--config", "tiny-sensor", cwd=tmp_path).returncode == 0
    evaluated = _cli("evaluate", "--config", "tiny-sensor", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    scores = json.loads(evaluated.stdout)
    assert scores["model"]["mae"] > 0
    exported = _cli("export", "--config", "tiny-sensor", "--out", "m", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    manifest = json.loads((tmp_path / "m" / "tiny-sensor" / "1" / "manifest.json").read_text())
    assert manifest["evaluation"]["model"]["mae"] == scores["model"]["mae"]
    # the manifest describes the training run, not the rebuild that loaded its weights
    assert manifest["training"]["epochs"] == 2
    assert manifest["evaluation"]["training"]["epochs"] >= 1


def test_a_checkpoint_evaluates_with_the_graph_it_was_trained_with(tmp_path):
    """A seasonal-memory checkpoint without the shift terms (trained with --anchor naive,
    or saved before `anchor` existed) evaluates without the flag."""
    import torch

    trained = _cli("train", "--config", "tiny-seasonal", "--anchor", "naive", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    path = tmp_path / "runs" / "tiny-seasonal.pt"
    saved = torch.load(path, weights_only=True)
    assert not any(k.startswith("shift.") for k in saved["weights"])
    del saved["config"]["anchor"]  # as a checkpoint from before the field
    torch.save(saved, path)
    evaluated = _cli("evaluate", "--config", "tiny-seasonal", cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["model"]["mae"] > 0


def test_a_user_csv_trains(tmp_path):
    ts = pd.date_range("2021-01-01", periods=900, freq="h")
    level = (
        10 + np.sin(np.arange(900) * 2 * np.pi / 24) + np.random.default_rng(0).normal(0, 0.3, 900)
    )
    pd.DataFrame({"ts": ts, "load": level}).to_csv(tmp_path / "plant.csv", index=False)
    done = _cli(
        "all",
        "--config",
        "tiny-sensor",
        "--dataset",
        "plant.csv",
        "--value-columns",
        "load",
        "--out",
        "m",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "m" / "plant" / "1" / "manifest.json").read_text())
    assert manifest["inputs"] == ["load"] and manifest["frequency_seconds"] == 3600


def test_a_bad_user_file_is_a_clear_error(tmp_path):
    pd.DataFrame({"ts": ["x"] * 300, "load": 1.0}).to_csv(tmp_path / "bad.csv", index=False)
    done = _cli(
        "all",
        "--config",
        "tiny-sensor",
        "--dataset",
        "bad.csv",
        "--value-columns",
        "load",
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "unparseable time 'x'" in done.stderr


def test_configs_lists_every_named_config(capsys):
    import training.__main__ as cli
    from training.config import PRESETS

    assert cli.main(["configs"]) == 0
    out = capsys.readouterr().out
    heads = [line for line in out.splitlines() if line and not line[0].isspace()]
    assert [line.split(":")[0] for line in heads] == list(PRESETS)
    for head, (name, config) in zip(heads, PRESETS.items(), strict=True):
        assert head.endswith(f"mode {config.mode}"), name
    # What a preset derives from its data's frequency: half-hourly -> one day ahead,
    # daily and weekly seasons; business days -> five days ahead.
    assert "horizon 48 steps; seasons 48 (1 day), 336 (1 week)" in out
    assert "horizon 5 steps; seasons none" in out


def test_unknown_config_is_a_clear_error(tmp_path):
    unknown = _cli("train", "--config", "no-such-config", cwd=tmp_path)
    assert unknown.returncode == 1
    assert "unknown config 'no-such-config'; known configs:" in unknown.stderr
    assert "elec-demand" in unknown.stderr and "sp500" in unknown.stderr
    assert list(tmp_path.iterdir()) == []  # nothing was written


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_missing_checkpoint_is_a_clear_error(tmp_path, command):
    import training.__main__ as cli

    runs, out = tmp_path / "r", tmp_path / "m"
    with pytest.raises(SystemExit) as exited:  # exit status 1, the message on stderr
        cli.main([command, "--config", "tiny-sensor", "--runs", str(runs), "--out", str(out)])
    want = f"no checkpoint {runs}/tiny-sensor.pt: run `python -m training train` first"
    assert str(exited.value) == want
    assert not out.exists()


def test_a_failed_export_is_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch, capsys):
    import training.__main__ as cli
    import training.pipeline
    from training.export import ExportError

    def broken(*_args, **_kwargs):  # fault injection: the graph disagrees with torch
        raise ExportError("parity torch_vs_ort: relative error 3.00e-02 > 0.0001")

    monkeypatch.setattr(training.pipeline, "check_parity", broken)
    out = tmp_path / "m"
    argv = ["all", "--config", "tiny-sensor", "--runs", str(tmp_path / "r"), "--out", str(out)]
    assert cli.main([*argv, "--quiet"]) == cli.EXPORT_FAILED
    assert "export failed: parity torch_vs_ort" in capsys.readouterr().err
    assert not out.exists()  # not even the --out folder this run made


def test_ensure_trains_only_the_missing_default_models(tmp_path, monkeypatch, capsys):
    """`make serve` runs `python -m training ensure --out models`: it builds each default
    model missing from --out and leaves present ones alone. Run here with the tiny
    configs standing in for the defaults (the real ones train for ~10 minutes)."""
    import training.__main__ as cli

    assert cli.DEFAULT_MODELS == ("elec-demand", "sp500")
    monkeypatch.setattr(cli, "DEFAULT_MODELS", ("tiny-stock", "tiny-sensor"))
    out = tmp_path / "models"
    (out / "tiny-sensor" / "1").mkdir(parents=True)  # present: must not be rebuilt
    assert cli.main(["ensure", "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "tiny-stock: missing, training it now" in printed
    assert f"tiny-sensor: present in {out}/" in printed
    manifest = json.loads((out / "tiny-stock" / "1" / "manifest.json").read_text())
    assert manifest["name"] == "tiny-stock" and (out / "tiny-stock" / "1" / "model.onnx").exists()
    assert list((out / "tiny-sensor" / "1").iterdir()) == []
    built = (out / "tiny-stock" / "1" / "model.onnx").stat().st_mtime_ns
    assert cli.main(["ensure", "--out", str(out), "--quiet"]) == 0  # all present: no training
    assert "missing" not in capsys.readouterr().out
    assert (out / "tiny-stock" / "1" / "model.onnx").stat().st_mtime_ns == built


def _hourly_csv(path, n=900, gaps=()):
    ts = pd.date_range("2021-01-01", periods=n, freq="h")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "ts": ts,
            "load": 10 + np.sin(np.arange(n) * 2 * np.pi / 24) + rng.normal(0, 0.3, n),
            "temp": rng.normal(15, 2, n),
        }
    )
    frame = frame.drop(index=list(gaps))
    frame.loc[frame.index[50], "temp"] = np.nan
    frame.to_csv(path, index=False)


def test_a_file_with_gaps_trains_in_one_command_with_fill(tmp_path):
    _hourly_csv(tmp_path / "site.csv", gaps=range(300, 303))
    args = ("all", "--config", "tiny-sensor", "--dataset", "site.csv", "--seasons", "1d")
    refused = _cli(*args, cwd=tmp_path)
    assert refused.returncode == 2
    assert "column 'temp'" in refused.stderr  # the first run: one value missing
    assert "2021-01-03 02:00:00" in refused.stderr  # the first timestamp of the run
    # One error names the limit that fills every run: the 3 absent hours too.
    assert "2 such runs in all, the longest 3 steps" in refused.stderr
    assert "--fill interpolate:3" in refused.stderr
    done = _cli(*args, "--fill", "interpolate:3", "--out", "m", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "m" / "site" / "1" / "manifest.json").read_text())
    assert manifest["inputs"] == ["load", "temp"]  # every non-time column, in file order
    assert manifest["data"]["fill"]["policy"] == "interpolate:3"
    assert manifest["data"]["fill"]["absent_timestamps"] == 3
    assert "seasonal_naive_1d" in manifest["evaluation"]["baselines"]
    assert "verdict: " in done.stdout


def test_require_beat_fails_and_exports_nothing(tmp_path):
    _hourly_csv(tmp_path / "site.csv")
    done = _cli(
        "all",
        *("--config", "tiny-sensor", "--dataset", "site.csv", "--fill", "carry:1"),
        *("--seasons", "1d", "--baselines", "seasonal_naive,naive", "--epochs", "1"),
        *("--require-beat", "all", "--out", "m"),
        cwd=tmp_path,
    )
    assert done.returncode == 3, done.stderr
    assert "quality gate: --require-beat all: the model does not beat" in done.stderr
    assert not (tmp_path / "m").exists()


def test_a_series_too_short_for_a_setting_fails_before_training(tmp_path):
    _hourly_csv(tmp_path / "site.csv", n=300)
    done = _cli(
        "all",
        *("--config", "tiny-sensor", "--dataset", "site.csv", "--fill", "carry:1"),
        *("--seasons", "1w", "--out", "m"),
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert "season 168 steps (1 week) needs" in done.stderr and "(--seasons)" in done.stderr
    assert not (tmp_path / "m").exists() and not (tmp_path / "runs").exists()


def test_configs_shows_what_a_preset_derives_for_a_file(tmp_path):
    _hourly_csv(tmp_path / "site.csv")
    done = _cli("configs", "--dataset", "site.csv", "--fill", "carry:1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "horizon 24 steps; seasons 24 (1 day), 168 (1 week)" in done.stdout
    assert "seasonal naive 1 day, seasonal naive 1 week, MSTL, AutoETS" in done.stdout
