from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def _documented_settings() -> dict[str, str]:
    """docs/api.md's settings table: FORECAST_<NAME> -> its default as written."""
    text = API_DOC.read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`FORECAST_"):
            rows[cells[0].strip("`")] = cells[1].strip("`")
    return rows


def _as_documented(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return json.dumps(value)
    return str(value)


def test_every_setting_is_in_the_docs_table_with_its_default() -> None:
    documented = _documented_settings()
    defaults = Settings().model_dump()
    assert sorted(documented) == sorted(f"FORECAST_{name.upper()}" for name in defaults)
    for name, value in defaults.items():
        assert documented[f"FORECAST_{name.upper()}"] == _as_documented(value), name
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
