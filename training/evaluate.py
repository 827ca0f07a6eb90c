"""Rolling-origin evaluation over the test split, and the metrics every method is scored by.

An origin t is a step of the test split after which a forecast for t+1..t+H is made.
The model's forecast at t comes from ONE streamed pass over the whole series from zero
state, so it is exactly what the service would have answered after seeing rows 0..t.
"""

from __future__ import annotations

import numpy as np
import torch

from contract.manifest import median_index
from training.features import Split
from training.model import Forecaster


def origins(split: Split, horizon: int, every: int) -> np.ndarray:
    """Origins from the last training-visible step to the last with a full horizon."""
    return np.arange(split.test - 1, split.n - horizon, every)


def actuals(y: np.ndarray, at: np.ndarray, horizon: int) -> np.ndarray:
    """[O, H] observed target values after each origin."""
    return y[at[:, None] + np.arange(1, horizon + 1)[None, :]]


def model_forecasts(model: Forecaster, x: np.ndarray) -> np.ndarray:
    """[N, H, Q] raw-scale forecasts after every step, from one streamed pass."""
    with torch.no_grad():
        xt = torch.from_numpy(x)[None]
        q, anchor, _ = model.steps(xt, model.zero_state(1))
        return model.to_raw(q, anchor)[0].numpy().astype(np.float64)


def mase_scale(y_train: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive forecast (naive when season = 1)."""
    # A constant series would make every MASE infinite; floor the scale instead.
    return max(float(np.mean(np.abs(y_train[season:] - y_train[:-season]))), 1e-12)


def metrics(
    forecast: np.ndarray, actual: np.ndarray, quantiles: tuple[float, ...], scale: float
) -> dict[str, object]:
    """forecast [O, H, Q] raw, actual [O, H]. Point = the quantile nearest 0.5."""
    qs = np.asarray(quantiles)
    point = forecast[..., median_index(quantiles)]
    err = actual - point
    diff = actual[..., None] - forecast
    pinball = np.maximum(qs * diff, (qs - 1.0) * diff)
    lo, hi = forecast[..., 0], forecast[..., -1]
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mase": float(np.mean(np.abs(err)) / scale),
        "pinball": float(np.mean(pinball)),
        f"coverage_{round((qs[-1] - qs[0]) * 100)}": float(
            np.mean((actual >= lo) & (actual <= hi))
        ),
        "mae_by_horizon": [float(v) for v in np.mean(np.abs(err), axis=0)],
    }
