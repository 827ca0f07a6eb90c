"""GARCH(1,1) baseline: real conditional volatility, no look-ahead, sensible intervals."""

from __future__ import annotations

import numpy as np

from training import evaluate
from training.baselines import garch
from training.data import load
from training.features import Split


def _prices():
    y = load("sp500").frame["close"].to_numpy()[-1500:]
    return y, Split.of(len(y), 0.15, 0.15)


def test_garch_quantiles_are_ordered_and_cover_about_their_level():
    y, split = _prices()
    at = evaluate.origins(split, 5, 1)
    fc = garch(y, at, 5, (0.1, 0.5, 0.9), split)
    assert fc.shape == (len(at), 5, 3)
    assert (np.diff(fc, axis=-1) > 0).all()
    coverage = evaluate.metrics(fc, evaluate.actuals(y, at, 5), (0.1, 0.5, 0.9), 1.0)
    assert 0.65 < coverage["coverage_80"] < 0.95
    # volatility clusters: the band's width changes from origin to origin
    width = fc[:, 0, 2] / fc[:, 0, 0]
    assert width.max() > 1.5 * (width.min() - 1) + 1


def test_garch_forecasts_use_only_data_up_to_the_origin():
    y, split = _prices()
    at = evaluate.origins(split, 5, 7)
    before = garch(y, at, 5, (0.1, 0.5, 0.9), split)
    poisoned = y.copy()
    poisoned[at[3] + 1 :] *= 3.0  # a crash after the 4th origin
    after = garch(poisoned, at, 5, (0.1, 0.5, 0.9), split)
    np.testing.assert_allclose(after[:4], before[:4], rtol=1e-9)
    assert not np.allclose(after[4:], before[4:])
