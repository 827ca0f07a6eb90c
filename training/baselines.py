"""The forecasts a user would make instead, on the same origins as the model.

Each baseline returns [O, H, Q] raw-scale quantiles for the origins `at`, using only data
up to each origin. Intervals of the naive methods come from their own errors on the
training split (empirical quantiles per horizon step), so every method is scored on the
same pinball loss and coverage.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from contract.manifest import median_index
from training.features import Split


def seasonal_naive(
    y: np.ndarray,
    at: np.ndarray,
    horizon: int,
    quantiles: tuple[float, ...],
    lag: int,
    split: Split,
) -> np.ndarray:
    """y[t + h - lag·ceil(h/lag)], with the training errors' quantiles around it."""
    steps = np.arange(1, horizon + 1)
    back = steps - lag * np.ceil(steps / lag).astype(int)  # <= 0: last season's value
    point = y[at[:, None] + back[None, :]]
    # In-sample errors of the same rule at every training origin.
    train_at = np.arange(lag, split.val - horizon)
    train_err = y[train_at[:, None] + steps] - y[train_at[:, None] + back]
    offsets = np.quantile(train_err, quantiles, axis=0).T  # [H, Q]
    offsets -= offsets[:, [median_index(quantiles)]]  # centred: the point stays the median
    return point[..., None] + offsets[None]


def log_returns(
    y: np.ndarray,
    at: np.ndarray,
    horizon: int,
    quantiles: tuple[float, ...],
    split: Split,
    drift: bool,
) -> np.ndarray:
    """Price × exp(quantiles of the training split's h-day log returns).

    drift=True is the 'historical distribution of returns' baseline; drift=False centres
    it on the last price: the random walk, with the same spread.
    """
    log_p = np.log(y[: split.val])
    quant = np.stack(
        [np.quantile(log_p[h:] - log_p[:-h], quantiles) for h in range(1, horizon + 1)]
    )  # [H, Q]
    if not drift:
        quant -= quant[:, [median_index(quantiles)]]
    return y[at][:, None, None] * np.exp(quant[None])


def statsforecast(
    kind: str,
    y: np.ndarray,
    at: np.ndarray,
    horizon: int,
    quantiles: tuple[float, ...],
    window: int,
    season: int,
    log: bool,
) -> np.ndarray:
    """statsforecast refitted at every origin on a trailing window (n_jobs=2).

    Each origin's window is its own series, so statsforecast fits them in parallel.
    Quantile pairs symmetric around the median come from its prediction intervals.
    """
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoARIMA, AutoETS

    models = {
        "mstl": lambda: MSTL(
            season_length=[season, season * 7], trend_forecaster=AutoETS(model="ZZN")
        ),
        "autoets": lambda: AutoETS(season_length=season),
        "autoarima": lambda: AutoARIMA(season_length=season),
    }
    series = np.log(y) if log else y
    frames = [
        pd.DataFrame({"unique_id": k, "ds": np.arange(window), "y": series[t + 1 - window : t + 1]})
        for k, t in enumerate(at)
    ]
    levels = sorted({round((1 - 2 * q) * 100) for q in quantiles if q < 0.5})
    sf = StatsForecast(models=[models[kind]()], freq=1, n_jobs=2)
    fc = sf.forecast(df=pd.concat(frames), h=horizon, level=levels or None)
    name = next(c for c in fc.columns if c not in ("unique_id", "ds") and "-" not in c)
    out = np.empty((len(at), horizon, len(quantiles)))
    fc = fc.sort_values(["unique_id", "ds"])
    for j, q in enumerate(quantiles):
        if abs(q - 0.5) < 1e-9:
            column = name
        else:
            level = round(abs(1 - 2 * q) * 100)
            column = f"{name}-{'lo' if q < 0.5 else 'hi'}-{level}"
        out[..., j] = fc[column].to_numpy().reshape(len(at), horizon)
    return np.exp(out) if log else out


def run(
    name: str,
    y: np.ndarray,
    at: np.ndarray,
    horizon: int,
    quantiles: tuple[float, ...],
    split: Split,
    season: int,
    window: int,
    log: bool,
) -> np.ndarray:
    """A baseline by name, as listed in a TrainConfig."""
    if name == "seasonal_naive":
        return seasonal_naive(y, at, horizon, quantiles, season, split)
    if name == "seasonal_naive_daily":
        return seasonal_naive(y, at, horizon, quantiles, season, split)
    if name == "seasonal_naive_weekly":
        return seasonal_naive(y, at, horizon, quantiles, season * 7, split)
    if name == "random_walk":
        return log_returns(y, at, horizon, quantiles, split, drift=False)
    if name == "historical_returns":
        return log_returns(y, at, horizon, quantiles, split, drift=True)
    if name in ("mstl", "autoets", "autoarima"):
        return statsforecast(name, y, at, horizon, quantiles, window, season, log)
    raise ValueError(f"unknown baseline {name!r}")
