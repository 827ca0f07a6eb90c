"""Turning a Series into the model's matrices: the x columns and the training targets.

The time-derived columns are the manifest's own time features, computed by the contract's
formula (contract.timefeatures), so what the model saw in training is what the service
feeds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from contract.manifest import InputFeature, TimeFeature
from contract.timefeatures import TimeColumn, time_features_array
from training.config import TrainConfig
from training.data import Series

TIME_FEATURES: dict[str, int] = {
    "time_of_day": 86_400,
    "day_of_week": 604_800,
    "day_of_year": 31_556_952,  # mean Gregorian year
}


@dataclass(frozen=True)
class FeatureLayout:
    """The graph's F axis: which columns come from the client and which from the clock."""

    inputs: tuple[str, ...]
    target: str
    time_features: tuple[str, ...]

    @property
    def target_index(self) -> int:
        return self.inputs.index(self.target)

    def manifest_features(self, mode: str = "level") -> list[InputFeature | TimeFeature]:
        columns: list[InputFeature | TimeFeature] = []
        for n in self.inputs:
            if mode == "returns" and n == self.target:
                # The graph takes the log of the price: zero or negative has no forecast.
                columns.append(InputFeature(name=n, source="input", min_exclusive=0.0))
            else:
                columns.append(InputFeature(name=n, source="input"))
        for name in self.time_features:
            for fn in ("sin", "cos"):
                columns.append(
                    TimeFeature(
                        name=f"{name}_{fn}",
                        source="time",
                        period_seconds=TIME_FEATURES[name],
                        function=fn,
                    )
                )
        return columns

    def time_columns(self) -> list[TimeColumn]:
        """The time features in graph order (after the inputs), as the contract's columns."""
        return [
            TimeColumn(f.period_seconds, f.function)
            for f in self.manifest_features()
            if isinstance(f, TimeFeature)
        ]


def layout_for(config: TrainConfig, series: Series) -> FeatureLayout:
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
    return FeatureLayout(inputs, target, time_features)


def epoch_seconds(index: np.ndarray) -> np.ndarray:
    return index.astype("datetime64[s]").astype(np.int64).astype(np.float64)


def design_matrix(series: Series, layout: FeatureLayout) -> np.ndarray:
    """[N, F] float32 in manifest order: client inputs, then time features (float64 first,
    as the contract says, then float32)."""
    values = series.frame[list(layout.inputs)].to_numpy(dtype=np.float32)
    seconds = epoch_seconds(series.frame.index.to_numpy())
    clock = time_features_array(seconds, layout.time_columns()).astype(np.float32)
    return np.concatenate([values, clock], axis=1)


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
