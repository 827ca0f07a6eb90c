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


def garch(
    y: np.ndarray,
    at: np.ndarray,
    horizon: int,
    quantiles: tuple[float, ...],
    split: Split,
) -> np.ndarray:
    """GARCH(1,1) with a constant mean on daily log returns (the `arch` package).

    Fitted once on the training split; with those parameters fixed, the conditional
    variance is filtered through the whole series, so each origin's forecast uses data
    up to the origin only. The h-step log return is normal with the summed variances of
    steps 1..h (returns uncorrelated), and its quantiles give price quantiles.
    """
    from arch import arch_model
    from scipy.stats import norm

    returns = 100.0 * np.diff(np.log(y))  # returns[t-1] is the return into step t
    fitted = arch_model(returns[: split.val - 1], mean="Constant", vol="GARCH", p=1, q=1)
    params = fitted.fit(disp="off").params
    filtered = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1).fix(params)
    fc = filtered.forecast(horizon=horizon, start=int(at[0]) - 1, reindex=False)
    variance = fc.variance.to_numpy()[at - at[0]]  # [O, H] per-step variances
    mean = np.cumsum(fc.mean.to_numpy()[at - at[0]], axis=1)  # [O, H] cumulative means
    scale = np.sqrt(np.cumsum(variance, axis=1))
    z = norm.ppf(np.asarray(quantiles))
    log_move = (mean[..., None] + scale[..., None] * z) / 100.0
    return y[at][:, None, None] * np.exp(log_move)


def statsforecast(
    kind: str,
    y: np.ndarray,
    at: np.ndarray,
    horizon: int,
    quantiles: tuple[float, ...],
    window: int,
    seasons: tuple[int, ...],
    log: bool,
) -> np.ndarray:
    """statsforecast refitted at every origin on a trailing window (n_jobs=2).

    Each origin's window is its own series, so statsforecast fits them in parallel.
    Quantile pairs symmetric around the median come from its prediction intervals.
    MSTL takes every season the window holds twice; AutoETS/AutoARIMA the shortest.
    """
    from statsforecast import StatsForecast
    from statsforecast.models import MSTL, AutoARIMA, AutoETS

    short = min(seasons, default=1)
    models = {
        "mstl": lambda: MSTL(
            season_length=[s for s in seasons if 2 * s < window],
            trend_forecaster=AutoETS(model="ZZN"),
        ),
        "autoets": lambda: AutoETS(season_length=short),
        "autoarima": lambda: AutoARIMA(season_length=short),
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
    *,
    lag: int,
    seasons: tuple[int, ...],
    window: int,
    log: bool,
) -> np.ndarray:
    """A baseline by name, as resolved into a TrainConfig (training/resolve.py).

    lag: the seasonal naive's lag in steps for "naive"/"seasonal_naive_<period>".
    """
    if name == "naive" or name.startswith("seasonal_naive_"):
        return seasonal_naive(y, at, horizon, quantiles, lag, split)
    if name == "random_walk":
        return log_returns(y, at, horizon, quantiles, split, drift=False)
    if name == "historical_returns":
        return log_returns(y, at, horizon, quantiles, split, drift=True)
    if name == "garch":
        return garch(y, at, horizon, quantiles, split)
    if name in ("mstl", "autoets", "autoarima"):
        return statsforecast(name, y, at, horizon, quantiles, window, seasons, log)
    raise ValueError(f"unknown baseline {name!r}")
