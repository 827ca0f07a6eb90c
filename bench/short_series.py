"""Short intraday series: the model against MSTL on held-back 5-week windows.

    python -m bench.short_series --screen            # simple seasonal rules vs MSTL (no training)
    python -m bench.short_series --candidates default,small --windows fr0,fr20,vic0
    python -m bench.short_series --weeks 12 --candidates old,default --windows vic20,fr10

Each window is read like the suite's fr-load-5w (one value column, the sensor recipe,
everything derived from the data, 150 s of training), and every method is scored on the
same daily origins of its test split by the project's own evaluation
(training.pipeline.evaluation). A candidate is a set of config overrides applied to the
sensor preset before it is resolved; it is a research tool, not part of the default
pipeline.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from training import baselines, evaluate
from training.anchor import seasonal_starts, set_start
from training.config import TrainConfig, preset
from training.data import FillPolicy, Series, from_frame
from training.features import Split
from training.model import Forecaster, ForecasterSpec
from training.pipeline import evaluation
from training.resolve import resolve
from training.suite import SUITE_TRAIN_SECONDS, _epf_load
from training.train import series_run, train

WEEKS = 5


def _fr(offset_weeks: int) -> pd.DataFrame:
    frame = _epf_load()
    end = len(frame) - offset_weeks * 168
    return frame.iloc[end - WEEKS * 168 : end]


def _vic(offset_weeks: int) -> pd.DataFrame:
    from tsdata import fpp3

    raw = fpp3.vic_elec.reset_index()
    time_column = "Time" if "Time" in raw.columns else raw.columns[0]
    frame = raw[[time_column, "Demand"]].rename(columns={time_column: "ts"})
    end = len(frame) - offset_weeks * 336
    return frame.iloc[end - WEEKS * 336 : end]


# name -> (reader, time column, fill)
WINDOWS: dict[str, tuple[Callable[[], pd.DataFrame], str, str]] = {
    "fr0": (lambda: _fr(0), "ds", "none"),  # the suite's fr-load-5w
    "fr10": (lambda: _fr(10), "ds", "none"),
    "fr20": (lambda: _fr(20), "ds", "none"),
    "fr30": (lambda: _fr(30), "ds", "none"),
    "fr40": (lambda: _fr(40), "ds", "none"),
    "vic0": (lambda: _vic(0), "ts", "none"),
    "vic20": (lambda: _vic(20), "ts", "none"),
    "vic40": (lambda: _vic(40), "ts", "none"),
}

# A candidate that sets segments, chunk or patience keeps them (short_recipe False): the
# default rule would otherwise replace them on every short window. "old" is the
# recipe before that rule.
CANDIDATES: dict[str, dict[str, object]] = {
    "default": {},
    "old": {"short_recipe": False},
    "small": {"hidden": 16, "layers": 1, "weight_decay": 1e-3},
    "small-chunk": {"hidden": 16, "layers": 1, "weight_decay": 1e-3, "chunk": 24},
    "memory": {"memory": "seasonal"},
    "naive-anchor": {"anchor": "naive"},  # seasonal memory from "same time last week"
    "seg8c24": {"segments": 8, "chunk": 24},
    "seg32c6": {"chunk": 6},
    "lr1e-2": {"learning_rate": 1e-2},
    "patience100": {"patience": 100, "epochs": 1000},
    "drop3": {"dropout": 0.3, "weight_decay": 1e-3},
    "seg8c24-patience100": {"segments": 8, "chunk": 24, "patience": 100, "epochs": 1000},
}


def window_series(name: str) -> Series:
    read, time_column, fill = WINDOWS[name]
    return from_frame(
        read(),
        name=name,
        source=f"short:{name}",
        time_column=time_column,
        fill=FillPolicy.parse(fill, "refuse"),
    )


def screen(name: str) -> dict[str, float]:
    """MAE of simple seasonal rules and of MSTL on the default recipe's origins."""
    series = window_series(name)
    config, _ = resolve(preset("sensor"), series)
    assert config.horizon and config.origin_every and config.seasons
    y = series.frame[series.target].to_numpy(np.float64)
    split = Split.of(len(y), config.validation_fraction, config.test_fraction)
    h, day, week = config.horizon, min(config.seasons), max(config.seasons)
    at = evaluate.origins(split, h, config.origin_every)
    truth = evaluate.actuals(y, at, h)
    steps = np.arange(1, h + 1)

    def naive(lag: int, back_weeks: int = 1) -> np.ndarray:
        return y[at[:, None] + steps[None, :] - lag * back_weeks]

    out: dict[str, float] = {}
    out["snaive_1w"] = float(np.mean(np.abs(truth - naive(week))))
    level = (y[at] - y[at - week])[:, None]
    out["shift_1w_now"] = float(np.mean(np.abs(truth - (naive(week) + level))))
    day_level = np.stack(
        [y[t - day + 1 : t + 1].mean() - y[t - week - day + 1 : t - week + 1].mean() for t in at]
    )
    out["shift_1w_day"] = float(np.mean(np.abs(truth - (naive(week) + day_level[:, None]))))
    for k in (2, 3):
        avg = np.mean([naive(week, j) for j in range(1, k + 1)], axis=0)
        lev = np.stack(
            [
                y[t - day + 1 : t + 1].mean()
                - np.mean(
                    [y[t - j * week - day + 1 : t - j * week + 1].mean() for j in range(1, k + 1)]
                )
                for t in at
            ]
        )
        out[f"shift_mean{k}w_day"] = float(np.mean(np.abs(truth - (avg + lev[:, None]))))
    out["fitted_start"] = float(np.mean(np.abs(truth - _fitted_start(y, split, config, at))))
    fc = baselines.statsforecast(
        "mstl",
        y,
        at,
        h,
        tuple(config.quantiles),
        config.baseline_window or 0,
        config.seasons,
        False,
    )
    out["mstl"] = float(np.mean(np.abs(truth - fc[..., 1])))
    out["origins"] = len(at)
    return out


def _fitted_start(y: np.ndarray, split: Split, config: TrainConfig, at: np.ndarray) -> np.ndarray:
    """The median forecast of seasonal memory's fitted start alone, with no training (a
    one-column model set by training.anchor): what the network starts from."""
    assert config.horizon and config.seasons
    spec = ForecasterSpec(
        n_features=1,
        target_index=0,
        horizon=config.horizon,
        quantiles=tuple(config.quantiles),
        hidden=4,
        layers=1,
        seasons=tuple(config.seasons),
        memory="seasonal",
        seasonal_shift=True,
    )
    model = Forecaster(spec)
    x = y.astype(np.float32)[:, None]
    model.set_scaling(torch.tensor(x[: split.val].mean(0)), torch.tensor(x[: split.val].std(0)))
    run = series_run(model, x, split, config.horizon)
    set_start(model, *seasonal_starts(model, [run])["fitted"])
    with torch.no_grad():
        q, anchor, _ = model.eval().steps(torch.from_numpy(x[None]), model.zero_state(1))
        return model.to_raw(q, anchor)[0, at, :, spec.median_index].numpy()


def run_candidate(window: str, candidate: str, seconds: float) -> dict[str, object]:
    series = window_series(window)
    overrides = dict(CANDIDATES[candidate])
    if {"segments", "chunk", "patience"} & overrides.keys():
        overrides["short_recipe"] = False
    config = preset("sensor").replace(
        name=window, dataset=window, max_train_seconds=seconds, **overrides
    )
    started = time.monotonic()
    trained = train(config, series=series, progress=False)
    scores, *_ = evaluation(trained)
    # MSTL at every test step as an origin too: 2 daily origins are too few to rank by.
    config, split = trained.config, trained.split
    y = trained.x[:, trained.layout.target_index].astype(np.float64)
    every = evaluate.origins(split, config.horizon or 0, 1)
    mstl_every = baselines.statsforecast(
        "mstl",
        y,
        every,
        config.horizon or 0,
        tuple(config.quantiles),
        config.baseline_window or 0,
        tuple(config.seasons or ()),
        False,
    )
    truth = evaluate.actuals(y, every, config.horizon or 0)
    naives = {k: v["mae"] for k, v in scores["baselines"].items() if k.startswith("seasonal")}
    return {
        "window": window,
        "candidate": candidate,
        "memory": trained.config.memory,
        "epochs": trained.epochs_run,
        "start": next((n.split()[5] for n in trained.notes if "started from the" in n), ""),
        "model": scores["model"]["mae"],
        "mstl": scores["baselines"]["mstl"]["mae"],
        "best_naive": min(naives.values()),
        "coverage": scores["model"]["coverage_80"],
        "every_step_mae": scores["model_every_step"]["mae"],
        "every_step_mstl": float(np.mean(np.abs(truth - mstl_every[..., 1]))),
        "seconds": round(time.monotonic() - started),
    }


def main() -> None:
    global WEEKS  # the readers' window length, for every window of this run
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--screen", action="store_true")
    parser.add_argument("--windows", default="fr0,fr20,vic0")
    parser.add_argument("--weeks", type=int, default=WEEKS, help="each window's length")
    parser.add_argument("--candidates", default="default")
    parser.add_argument("--seconds", type=float, default=SUITE_TRAIN_SECONDS)
    parser.add_argument("--out", default="runs/short_series.jsonl")
    args = parser.parse_args()
    windows = args.windows.split(",")
    WEEKS = args.weeks
    if args.screen:
        for w in windows:
            print(w, json.dumps({k: round(v, 1) for k, v in screen(w).items()}), flush=True)
        return
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for c in args.candidates.split(","):
        for w in windows:
            row = run_candidate(w, c, args.seconds)
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
