"""Graph input rows: a client's inputs plus the time features, in manifest order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from contract.timefeatures import TimeColumn, time_feature, time_feature_array


class Rows:
    """Builds x rows of one model, one at a time or many at once."""

    def __init__(self, features: Sequence[int | TimeColumn], n_inputs: int) -> None:
        self.n_features = len(features)
        self.n_inputs = n_inputs
        # (input index, 0, _) for a client input; (-1, period, is_sin) for a time feature.
        self._columns: list[tuple[int, float, bool]] = [
            (f, 0.0, False) if isinstance(f, int) else (-1, f.period, f.fn == "sin")
            for f in features
        ]

    def row(self, values: Sequence[Any], ts: float) -> list[float]:
        out: list[float] = []
        for idx, period, is_sin in self._columns:
            if idx >= 0:
                out.append(values[idx])
            else:
                out.append(time_feature(ts, period, "sin" if is_sin else "cos"))
        return out

    def block(self, values: np.ndarray, ts: np.ndarray) -> np.ndarray:
        """x [n, F] for n streams' next observation: values [n, inputs], ts [n]."""
        x = np.empty((len(ts), self.n_features), dtype=np.float32)
        for j, (idx, period, is_sin) in enumerate(self._columns):
            if idx >= 0:
                x[:, j] = values[:, idx]
            else:
                x[:, j] = time_feature_array(ts, period, "sin" if is_sin else "cos")
        return x
