"""Tiny real models, trained once per session on slices of the real data sets."""

from __future__ import annotations

import pytest

from training.config import preset
from training.train import Trained, train


@pytest.fixture(scope="session")
def tiny_sensor() -> Trained:
    return train(preset("tiny-sensor"), progress=False)


@pytest.fixture(scope="session")
def tiny_stock() -> Trained:
    return train(preset("tiny-stock"), progress=False)


@pytest.fixture(scope="session")
def tiny_seasonal() -> Trained:
    """Seasonal memory with a season shorter than the horizon (4 < 6) and one longer."""
    return train(preset("tiny-seasonal"), progress=False)
