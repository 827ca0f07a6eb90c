"""The CLI end to end on tiny configs, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

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
