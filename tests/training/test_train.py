"""Training: no leakage across the split, determinism, and learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.config import preset
from training.features import Split, targets
from training.train import train


def test_split_is_chronological_and_covers_everything():
    s = Split.of(1000, 0.15, 0.15)
    assert 0 < s.val < s.test < s.n == 1000
    assert s.n - s.test == 150 and s.test - s.val == 150


def test_scaling_comes_from_the_training_part_only(tiny_sensor):
    t = tiny_sensor
    train_x = t.x[: t.split.val]
    np.testing.assert_allclose(t.model.x_mean.numpy(), train_x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(
        t.model.x_std.numpy(), np.maximum(train_x.std(axis=0), 1e-6), rtol=1e-5
    )
    # and differs from the whole-series statistic, so the test above can fail
    assert not np.allclose(t.model.x_mean.numpy()[0], t.x[:, 0].mean(), rtol=1e-4)


def test_changing_the_test_split_does_not_change_training(tiny_sensor):
    """Training sees nothing past the validation boundary: poisoning the test rows of
    the data leaves the trained weights identical."""
    config = preset("tiny-sensor")
    series = tiny_sensor.series
    frame = series.frame.copy()
    frame.iloc[tiny_sensor.split.test :, 0] = 1e9
    poisoned = type(series)(
        series.name, series.source, frame, series.frequency, series.target, series.inputs
    )
    again = train(config.replace(epochs=1), series=poisoned, progress=False)
    clean = train(config.replace(epochs=1), series=series, progress=False)
    for a, b in zip(
        again.model.state_dict().values(), clean.model.state_dict().values(), strict=True
    ):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_targets_are_masked_at_the_end():
    y, mask = targets(np.arange(10.0), 3)
    assert y[0].tolist() == [1.0, 2.0, 3.0]
    assert mask[-1].sum() == 0 and mask[-3].tolist() == [1.0, 1.0, 0.0]


def test_training_is_deterministic_for_a_seed():
    config = preset("tiny-stock").replace(epochs=1)
    a = train(config, progress=False).model.state_dict()
    b = train(config, progress=False).model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_training_lowers_the_validation_loss():
    config = preset("tiny-sensor")
    before = train(config.replace(epochs=1), progress=False).best_val_loss
    after = train(config.replace(epochs=8, patience=8), progress=False).best_val_loss
    assert after < before


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_quantiles_never_cross(tiny_sensor, cell):
    from training.model import Forecaster

    spec = tiny_sensor.model.spec
    model = Forecaster(type(spec)(**{**spec.__dict__, "cell": cell})).eval()
    torch.manual_seed(1)
    for p in model.parameters():
        p.data.normal_(0, 3)  # wild weights: crossing would show
    with torch.no_grad():
        q, anchor, _ = model.steps(torch.from_numpy(tiny_sensor.x[None, :200]), model.zero_state(1))
        raw = model.to_raw(q, anchor)
    assert (torch.diff(raw, dim=-1) >= 0).all()
