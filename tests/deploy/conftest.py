"""Fixtures of the deploy tests: a tiny real artifact, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from deploy_support import TINY_MODEL


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models directory holding one small sensor artifact (inputs demand, temperature)."""
    from training.tiny import make_tiny_artifact

    models = tmp_path_factory.mktemp("models")
    make_tiny_artifact(models, kind="sensor", name=TINY_MODEL)
    return models
