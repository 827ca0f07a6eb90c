"""Turning a Series into the model's matrices: the x columns and the training targets.

The time-derived columns are computed exactly as docs/artifact.md tells the service to
compute them, so what the model saw in training is what it sees when served.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.config import TrainConfig
from training.data import Series

TIME_FEATURES: dict[str, int] = {
    "time_of_day": 86_400,
    "day_of_week": 604_800,
    "day_of_year": 31_556_952,  # mean Gregorian year
}


@dataclass(frozen=True)
class Layout:
    """The graph's F axis: which columns come from the client and which from the clock."""

    inputs: tuple[str, ...]
    target: str
    time_features: tuple[str, ...]

    @property
    def target_index(self) -> int:
        return self.inputs.index(self.target)

    def manifest_features(self, mode: str = "level") -> list[dict[str, object]]:
        columns: list[dict[str, object]] = [{"name": n, "source": "input"} for n in self.inputs]
        if mode == "returns":
            # The graph takes the log of the price: zero or negative has no forecast.
            columns[self.target_index]["min_exclusive"] = 0.0
        for name in self.time_features:
            for fn in ("sin", "cos"):
                columns.append(
                    {
                        "name": f"{name}_{fn}",
                        "source": "time",
                        "period_seconds": TIME_FEATURES[name],
                        "function": fn,
                    }
                )
        return columns


def layout_for(config: TrainConfig, series: Series) -> Layout:
    target = config.target or series.target
    inputs = tuple(config.inputs or series.inputs)
    if target not in inputs:
        inputs = (target, *inputs)
    missing = [c for c in inputs if c not in series.frame.columns]
    if missing:
        raise ValueError(f"config {config.name!r}: columns {missing} not in {series.name}")
    time_features = tuple(config.time_features or ())
    unknown = [f for f in time_features if f not in TIME_FEATURES]
    if unknown:
        raise ValueError(f"unknown time features {unknown}; known: {sorted(TIME_FEATURES)}")
    return Layout(inputs, target, time_features)


def epoch_seconds(index: np.ndarray) -> np.ndarray:
    return index.astype("datetime64[s]").astype(np.int64).astype(np.float64)


def time_columns(seconds: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """[N] epoch seconds -> [N, 2·len(names)] sin/cos columns, float64 then float32."""
    columns = []
    for name in names:
        period = TIME_FEATURES[name]
        angle = 2.0 * np.pi * np.mod(seconds, period) / period
        columns += [np.sin(angle), np.cos(angle)]
    if not columns:
        return np.zeros((len(seconds), 0), dtype=np.float32)
    return np.stack(columns, axis=1).astype(np.float32)


def design_matrix(series: Series, layout: Layout) -> np.ndarray:
    """[N, F] float32 in manifest order: client inputs, then time features."""
    values = series.frame[list(layout.inputs)].to_numpy(dtype=np.float32)
    seconds = epoch_seconds(series.frame.index.to_numpy())
    return np.concatenate([values, time_columns(seconds, layout.time_features)], axis=1)


@dataclass(frozen=True)
class Split:
    """Chronological boundaries: train [0, val), validation [val, test), test [test, n)."""

    val: int
    test: int
    n: int

    @classmethod
    def of(cls, n: int, validation_fraction: float, test_fraction: float) -> Split:
        test = n - max(1, round(n * test_fraction))
        val = test - max(1, round(n * validation_fraction))
        if val <= 0:
            raise ValueError(f"{n} rows are too few for this split")
        return cls(val=val, test=test, n=n)


def targets(anchor: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """For each step t, anchor[t+h] - anchor[t] for h = 1..H, and a mask of the valid ones.

    `anchor` is the scaled target (level mode) or the log price (returns mode); the model
    predicts these differences, so the loss is in the model's own units.
    """
    n = len(anchor)
    y = np.zeros((n, horizon), dtype=np.float32)
    mask = np.zeros((n, horizon), dtype=np.float32)
    for h in range(1, horizon + 1):
        y[: n - h, h - 1] = anchor[h:] - anchor[:-h]
        mask[: n - h, h - 1] = 1.0
    return y, mask
