"""Seasonal memory: the graph keeps the last S target values as state and reads the
seasonal naive forecast from them, identically in one call or step by step."""

from __future__ import annotations

import numpy as np
import torch

from training.model import Forecaster


def _as_pure_seasonal_naive(trained) -> Forecaster:
    """A copy whose head says 'no change' and whose gate takes the longest season fully:
    its median must then be exactly the seasonal naive forecast of that season."""
    model = Forecaster(trained.model.spec)
    model.load_state_dict(trained.model.state_dict())
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
        assert model.gate is not None
        model.gate.weight.zero_()
        model.gate.bias.zero_()
        model.gate.bias.view(len(model.spec.seasons), model.spec.horizon)[-1] = 1.0
    return model.eval()


def test_the_state_holds_the_last_season_of_scaled_targets(tiny_seasonal):
    model, x = tiny_seasonal.model, tiny_seasonal.x
    size = model.spec.memory_length
    with torch.no_grad():
        _, _, state = model.steps(torch.from_numpy(x[None, :200]), model.zero_state(1))
    names = list(model.spec.state_shapes())
    history = state[names.index("history")][0].numpy()
    seen = state[names.index("history_seen")][0].numpy()
    t = model.spec.target_index
    scaled = (x[200 - size : 200, t] - model.x_mean[t].item()) / model.x_std[t].item()
    np.testing.assert_allclose(history, scaled, rtol=1e-5, atol=1e-5)
    assert seen.tolist() == [float(size)]


def test_the_graph_reads_the_seasonal_naive_forecast_from_its_memory(tiny_seasonal):
    model = _as_pure_seasonal_naive(tiny_seasonal)
    x = tiny_seasonal.x
    season, horizon = max(model.spec.seasons), model.spec.horizon
    with torch.no_grad():
        q, anchor, _ = model.steps(torch.from_numpy(x[None, :300]), model.zero_state(1))
        raw = model.to_raw(q, anchor)[0, :, :, model.spec.median_index].numpy()
    y = x[:, model.spec.target_index].astype(np.float64)
    for t in (season, season + 17, 299):  # once a whole season has been seen
        expected = y[t + 1 - season : t + 1 - season + horizon]
        np.testing.assert_allclose(raw[t], expected, rtol=1e-5)


def test_before_a_season_is_seen_its_term_is_zero(tiny_seasonal):
    """A new stream: the unknown history is not read as zeros."""
    model = _as_pure_seasonal_naive(tiny_seasonal)
    x = tiny_seasonal.x
    with torch.no_grad():
        q, anchor, _ = model.steps(torch.from_numpy(x[None, :10]), model.zero_state(1))
        raw = model.to_raw(q, anchor)[0, :, :, model.spec.median_index].numpy()
    y = x[:10, model.spec.target_index]
    np.testing.assert_allclose(raw, np.repeat(y[:, None], model.spec.horizon, 1), rtol=1e-5)


def test_state_bytes_count_every_tensor(tiny_seasonal):
    spec = tiny_seasonal.model.spec
    hidden = 2 * spec.layers * spec.hidden  # h and c
    assert spec.state_bytes() == 4 * (hidden + max(spec.seasons) + 1)
