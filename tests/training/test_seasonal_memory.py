"""Seasonal memory: the graph keeps the last S target values as state and reads the
seasonal naive forecast from them, identically in one call or step by step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.anchor import blend_with_start, seasonal_starts, set_start
from training.config import preset
from training.data import DataError
from training.features import Split
from training.model import Forecaster, ForecasterSpec
from training.resolve import resolve
from training.train import fit, pinball, seasonal_history, series_run, spec_for


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
        assert model.shift is not None  # the fitted anchor's level terms (the default)
        model.shift.weight.zero_()
        model.shift.bias.zero_()
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


def test_a_training_window_starts_with_the_memory_a_stream_has_there(tiny_seasonal):
    """Training cuts the series into windows; each starts from the history the service
    would hold at its first row, not from an empty memory."""
    model, x = tiny_seasonal.model, tiny_seasonal.x
    run = series_run(model, x, tiny_seasonal.split, model.spec.horizon)
    size = model.spec.memory_length
    names = list(model.spec.state_shapes())
    for start in (3, size, 250):
        with torch.no_grad():
            _, _, state = model.steps(torch.from_numpy(x[None, :start]), model.zero_state(1))
        history, seen = seasonal_history(run, start, size)
        np.testing.assert_allclose(state[names.index("history")][0].numpy(), history, atol=1e-5)
        assert state[names.index("history_seen")][0].item() == seen == min(start, size)


class _FirstWindows(Forecaster):
    """Records the state its first training call is given (a spy, not a stand-in)."""

    first: list[torch.Tensor] | None = None

    def steps(self, x, state):
        if self.training and self.first is None:
            self.first = [s.clone() for s in state]
        return super().steps(x, state)


def test_fit_gives_each_window_the_memory_of_its_first_row(tiny_seasonal):
    model = _FirstWindows(tiny_seasonal.model.spec)
    model.load_state_dict(tiny_seasonal.model.state_dict())
    run = series_run(model, tiny_seasonal.x, tiny_seasonal.split, model.spec.horizon)
    config = tiny_seasonal.config.replace(epochs=1)
    np.random.seed(1)  # the epoch's window offset
    fit(model, config, [run], started=0.0, progress=False)
    assert model.first is not None
    names = list(model.spec.state_shapes())
    history = model.first[names.index("history")].numpy()
    seen = model.first[names.index("history_seen")][:, 0].numpy()
    assert seen.max() == model.spec.memory_length  # later windows start with a full memory
    for row, count in zip(history, seen, strict=True):
        # each window's memory is the run's targets just before some row
        size = model.spec.memory_length
        matches = [
            s for s in range(len(run.x)) if np.allclose(row, seasonal_history(run, s, size)[0])
        ]
        assert matches and min(matches[0], size) == count


SEASON, HORIZON, ROWS = 12, 5, 600


def _profile_on_a_trend():
    """A seasonal profile on a linear trend, and a small seasonal-memory model of it:
    "now + the change a season ago" forecasts it exactly, the seasonal naive is off by
    the trend over a season."""
    t = np.arange(ROWS)
    profile = np.sin(2 * np.pi * t / SEASON) * 10 + np.cos(4 * np.pi * t / SEASON) * 3
    x = (profile + 0.05 * t + 100).astype(np.float32)[:, None]
    spec = ForecasterSpec(
        n_features=1, target_index=0, horizon=HORIZON, quantiles=(0.1, 0.5, 0.9),
        hidden=4, layers=1, seasons=(SEASON,), memory="seasonal", seasonal_shift=True,
    )  # fmt: skip
    model = Forecaster(spec)
    model.set_scaling(torch.tensor(x[:400].mean(0)), torch.tensor(x[:400].std(0)))
    return model, x, series_run(model, x, Split.of(ROWS, 0.15, 0.15), HORIZON)


def test_the_fitted_start_is_the_best_seasonal_linear_forecast():
    model, x, run = _profile_on_a_trend()
    starts = seasonal_starts(model, [run])
    assert set(starts) == {"naive", "fitted"}
    set_start(model, *starts["fitted"])
    with torch.no_grad():
        q, anchor, _ = model.eval().steps(torch.from_numpy(x[None]), model.zero_state(1))
        median = model.to_raw(q, anchor)[0, :, :, model.spec.median_index].numpy()
    at = np.arange(2 * SEASON, ROWS - HORIZON)
    ahead = at[:, None] + np.arange(1, HORIZON + 1)[None, :]
    truth, naive = x[ahead, 0], x[ahead - SEASON, 0]
    assert np.abs(naive - truth).mean() > 0.5  # the trend over a season: 0.6
    np.testing.assert_allclose(median[at], truth, atol=0.02)
    gate = model.gate.bias.detach().view(HORIZON).numpy()  # type: ignore[union-attr]
    shift = model.shift.bias.detach().view(HORIZON).numpy()  # type: ignore[union-attr]
    np.testing.assert_allclose(gate, 1.0, atol=0.02)
    np.testing.assert_allclose(shift, -1.0, atol=0.02)


def test_training_starts_from_the_start_that_validates_better():
    model, _, run = _profile_on_a_trend()
    config = preset("tiny-seasonal").replace(epochs=1, segments=2, chunk=24)
    notes: list[str] = []
    fit(model, config, [run], started=0.0, progress=False, notes=notes)
    assert any("started from the fitted seasonal forecast" in n for n in notes), notes


def test_a_trained_model_reports_the_start_with_the_lower_validation_loss(tiny_seasonal):
    """Both starts scored again on the tiny model's validation: the note names the lower."""
    trained = tiny_seasonal
    model = Forecaster(trained.model.spec)
    model.load_state_dict(trained.model.state_dict())
    model.spread.fill_(1.0)  # as fit scored the starts: before the band is calibrated
    run = series_run(model, trained.x, trained.split, model.spec.horizon)
    taus = torch.tensor(trained.config.quantiles)
    losses = {}
    for name, start in seasonal_starts(model, [run]).items():
        set_start(model, *start)
        with torch.no_grad():
            end = trained.split.test
            q, _, _ = model.eval().steps(
                torch.from_numpy(trained.x[None, :end]), model.zero_state(1)
            )
            losses[name] = pinball(
                q[0], torch.from_numpy(run.y[:end]), torch.from_numpy(run.val_mask[:end]), taus
            ).item()
    best = min(losses, key=losses.__getitem__)
    assert losses["naive"] != losses["fitted"]
    assert any(f"started from the {best} seasonal forecast" in n for n in trained.notes)


def test_a_model_without_the_shift_terms_has_no_starts_to_choose():
    spec = ForecasterSpec(
        n_features=1, target_index=0, horizon=3, quantiles=(0.1, 0.5, 0.9),
        hidden=4, layers=1, seasons=(4,), memory="seasonal",
    )  # fmt: skip
    assert seasonal_starts(Forecaster(spec), []) == {}


def test_the_naive_anchor_is_the_graph_without_shift_terms(tiny_seasonal):
    config = tiny_seasonal.config.replace(anchor="naive")
    spec = spec_for(config, tiny_seasonal.layout, tiny_seasonal.x.shape[1])
    assert Forecaster(spec).shift is None
    assert Forecaster(tiny_seasonal.model.spec).shift is not None  # the default: fitted


def test_an_unknown_anchor_is_a_clear_error(tiny_seasonal):
    with pytest.raises(DataError, match="--anchor 'mean'"):
        resolve(preset("tiny-seasonal").replace(anchor="mean"), tiny_seasonal.series)


def test_the_exported_median_is_the_weighted_mean_of_start_and_trained(tiny_seasonal):
    """blend_with_start moves only the readouts, so the median forecast is exactly
    w x the start's + (1 - w) x the trained model's."""
    trained = tiny_seasonal
    x = torch.from_numpy(trained.x[None, :300])
    run = series_run(trained.model, trained.x, trained.split, trained.model.spec.horizon)

    def median(model):
        with torch.no_grad():
            q, anchor, _ = model.eval().steps(x, model.zero_state(1))
            return model.to_raw(q, anchor)[0, :, :, model.spec.median_index].numpy()

    torch.manual_seed(7)  # a start as fit makes it: an untrained cell, the data's scaling
    start = Forecaster(trained.model.spec)
    start.set_scaling(trained.model.x_mean, trained.model.x_std)
    set_start(start, *seasonal_starts(start, [run])["fitted"])
    blended = Forecaster(trained.model.spec)
    blended.load_state_dict(trained.model.state_dict())
    blend_with_start(blended, start.state_dict(), 0.25)
    expected = 0.25 * median(start) + 0.75 * median(trained.model)
    assert np.abs(median(start) - median(trained.model)).max() > 1.0  # they differ
    np.testing.assert_allclose(median(blended), expected, rtol=1e-5, atol=1e-3)


def test_fit_exports_the_start_at_weight_1_and_the_trained_model_at_0():
    """The blend is wired into fit: at weight 1 the readouts are exactly the fitted
    start's, at weight 0 they are what training left."""
    torch.manual_seed(0)  # the cell's initial weights
    np.random.seed(0)  # fit's window offsets
    model, _, run = _profile_on_a_trend()
    gate, shift = seasonal_starts(model, [run])["fitted"]
    config = preset("tiny-seasonal").replace(epochs=3, segments=2, chunk=24, start_weight=1.0)
    notes: list[str] = []
    fit(model, config, [run], started=0.0, progress=False, notes=notes)
    assert model.shift is not None and model.gate is not None
    assert any("1 x the seasonal start's + 0 x the trained" in n for n in notes), notes
    assert not model.head.weight.any() and not model.gate.weight.any()
    for layer, fitted in ((model.gate, gate), (model.shift, shift)):
        np.testing.assert_allclose(layer.bias.detach().view(fitted.shape), fitted, rtol=1e-5)

    torch.manual_seed(0)
    np.random.seed(0)
    model, _, run = _profile_on_a_trend()
    notes.clear()
    fit(model, config.replace(start_weight=0.0), [run], started=0.0, progress=False, notes=notes)
    assert not any("x the seasonal start's" in n for n in notes)
    assert model.gate is not None and model.gate.weight.any()  # trained, not the start


def test_a_start_weight_outside_0_to_1_is_a_clear_error(tiny_seasonal):
    with pytest.raises(DataError, match=r"--start-weight 1\.5"):
        resolve(preset("tiny-seasonal").replace(start_weight=1.5), tiny_seasonal.series)
