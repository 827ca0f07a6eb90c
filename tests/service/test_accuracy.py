"""Live accuracy rings: every horizon step is scored against the forecast made for it."""

from __future__ import annotations

import numpy as np

from service.engine.accuracy import Accuracy
from service.metrics import Metrics


def _scored(acc_metrics, k):
    return acc_metrics.scored[k - 1].value, acc_metrics.abs_error[k - 1].value


def test_a_new_ring_scores_nothing_before_it_has_forecasts():
    metrics = Metrics().for_model("m", 3)
    acc = Accuracy(3, 1.0, metrics)
    ring = acc.private_ring("s", fresh=True)
    assert ring is not None
    ring.step += 1
    acc.score_ring(ring, truth=4200.0)
    for k in (1, 2, 3):
        assert _scored(metrics, k) == (0.0, 0.0)


def test_each_step_is_scored_against_the_forecast_made_k_steps_before():
    metrics = Metrics().for_model("m", 3)
    acc = Accuracy(3, 1.0, metrics)
    ring = acc.private_ring("s", fresh=True)
    assert ring is not None
    acc.record(ring, np.array([10.0, 20.0, 30.0], dtype=np.float32))  # made at step 0
    ring.step += 1
    acc.record(ring, np.array([11.0, 21.0, 31.0], dtype=np.float32))  # made at step 1
    ring.step += 1
    acc.score_ring(ring, truth=25.0)  # truth of step 2: step 0's +2 forecast was 20
    assert _scored(metrics, 2) == (1.0, 5.0)
    assert _scored(metrics, 3) == (0.0, 0.0)
    assert _scored(metrics, 1) == (0.0, 0.0)  # step 1 is scored for every stream elsewhere
