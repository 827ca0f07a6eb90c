from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings


def test_defaults_and_every_field_documented() -> None:
    s = Settings()
    assert (s.host, s.port, s.models_dir) == ("127.0.0.1", 8000, Path("models"))
    assert s.providers == ["CPUExecutionProvider"] and s.intra_op_threads == 1
    assert s.state_backend == "memory"
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no docstring"


def test_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECAST_PORT", "9001")
    monkeypatch.setenv("FORECAST_PROVIDERS", "CUDAExecutionProvider, CPUExecutionProvider")
    monkeypatch.setenv("FORECAST_SNAPSHOT_PATH", "")
    monkeypatch.setenv("FORECAST_LOG_LEVEL", "DEBUG")
    s = Settings()
    assert s.port == 9001 and s.snapshot_path is None and s.log_level == "debug"
    assert s.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setenv("FORECAST_PROVIDERS", '["CPUExecutionProvider"]')
    assert Settings().providers == ["CPUExecutionProvider"]


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("FORECAST_PORT", "http", "port"),
        ("FORECAST_PORT", "70000", "port"),
        ("FORECAST_PROVIDERS", "TPUExecutionProvider", "unknown providers"),
        ("FORECAST_MAX_BATCH_ROWS", "0", "max_batch_rows"),
        ("FORECAST_ACCURACY_SAMPLE_FRACTION", "1.5", "accuracy_sample_fraction"),
        ("FORECAST_STATE_BACKEND", "redis", "FORECAST_REDIS_URL"),
        ("FORECAST_STATE_BACKEND", "sqlite", "state_backend"),
    ],
)
def test_invalid_settings_fail_at_start(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError, match=fragment):
        Settings()
