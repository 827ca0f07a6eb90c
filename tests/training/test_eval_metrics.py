"""The scores behind every report table, against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training import baselines, evaluate
from training.features import Split


def test_metrics_by_hand():
    # two origins, horizon 2, quantiles 0.1/0.5/0.9
    forecast = np.array(
        [[[8.0, 10.0, 12.0], [9.0, 10.0, 11.0]], [[0.0, 1.0, 2.0], [0.0, 2.0, 4.0]]]
    )
    actual = np.array([[11.0, 13.0], [1.0, 2.0]])
    m = evaluate.metrics(forecast, actual, (0.1, 0.5, 0.9), scale=2.0)
    errors = np.array([1.0, 3.0, 0.0, 0.0])
    assert m["mae"] == pytest.approx(errors.mean())
    assert m["rmse"] == pytest.approx(np.sqrt((errors**2).mean()))
    assert m["mase"] == pytest.approx(errors.mean() / 2.0)
    assert m["mae_by_horizon"] == pytest.approx([0.5, 1.5])
    # coverage: 11 in [8,12] yes; 13 in [9,11] no; 1 in [0,2] yes; 2 in [0,4] yes
    assert m["coverage_80"] == pytest.approx(0.75)
    # pinball of the first cell: y=11; q0.1=8 -> 0.1*3; q0.5=10 -> 0.5*1; q0.9=12 -> 0.1*1
    first = 0.3 + 0.5 + 0.1
    # second: y=13; 9 -> 0.4, 10 -> 1.5, 11 -> 1.8 ; third: y=1; 0 -> .1, 1 -> 0, 2 -> .1
    # fourth: y=2; 0 -> .2, 2 -> 0, 4 -> .2
    total = first + (0.4 + 1.5 + 1.8) + (0.1 + 0.0 + 0.1) + (0.2 + 0.0 + 0.2)
    assert m["pinball"] == pytest.approx(total / 12)


def test_mase_scale_is_the_in_sample_seasonal_naive_mae():
    y = np.array([1.0, 2.0, 4.0, 7.0, 11.0])
    assert evaluate.mase_scale(y, 1) == pytest.approx(np.mean([1, 2, 3, 4]))
    assert evaluate.mase_scale(y, 2) == pytest.approx(np.mean([3, 5, 7]))


def test_origins_start_at_the_last_step_before_the_test_split():
    split = Split(val=50, test=80, n=100)
    at = evaluate.origins(split, horizon=5, every=3)
    assert at[0] == 79 and at[-1] <= 100 - 5 - 1
    truth = evaluate.actuals(np.arange(100.0), at, 5)
    assert truth[0].tolist() == [80.0, 81.0, 82.0, 83.0, 84.0]


def test_seasonal_naive_repeats_the_last_season():
    y = np.arange(100.0)
    split = Split(val=60, test=80, n=100)
    fc = baselines.seasonal_naive(y, np.array([85]), 5, (0.1, 0.5, 0.9), lag=3, split=split)
    # h = 1, 2, 3 -> the last season y[83..85]; h = 4, 5 -> the same season again
    assert fc[0, :, 1].tolist() == [83.0, 84.0, 85.0, 83.0, 84.0]


def test_seasonal_naive_point_indexing_on_a_periodic_series():
    period = 4
    y = np.tile([1.0, 5.0, 3.0, 9.0], 30)
    split = Split(val=80, test=100, n=120)
    at = np.arange(99, 110)
    fc = baselines.seasonal_naive(y, at, 6, (0.1, 0.5, 0.9), lag=period, split=split)
    truth = evaluate.actuals(y, at, 6)
    np.testing.assert_allclose(fc[..., 1], truth)  # a perfect seasonal series
    np.testing.assert_allclose(fc[..., 0], truth)  # zero training error: no band


def test_random_walk_and_historical_returns():
    rng = np.random.default_rng(0)
    y = 100 * np.exp(np.cumsum(rng.normal(0.001, 0.01, 400)))
    split = Split(val=300, test=350, n=400)
    at = np.array([360, 370])
    rw = baselines.log_returns(y, at, 3, (0.1, 0.5, 0.9), split, drift=False)
    hist = baselines.log_returns(y, at, 3, (0.1, 0.5, 0.9), split, drift=True)
    np.testing.assert_allclose(rw[:, :, 1], y[at][:, None].repeat(3, 1))  # last price
    log_p = np.log(y[:300])
    q = np.quantile(log_p[2:] - log_p[:-2], (0.1, 0.5, 0.9))
    np.testing.assert_allclose(hist[0, 1], y[360] * np.exp(q))
    assert (np.diff(hist, axis=-1) > 0).all()
