"""promtool checks of the Prometheus files that docker-compose.yml mounts.

promtool ships with the Debian package `prometheus` (.ci/run installs it). A missing
binary fails these tests on purpose: the rules must never go unchecked.
"""

from __future__ import annotations

import subprocess

import yaml
from deploy_support import ALERTS_YML, PROMETHEUS_YML, require_binary

ALERT_NAMES = {
    "ForecastServiceDown",
    "ForecastHighErrorRatio",
    "ForecastHighLatencyP99",
    "ForecastQueueSaturation",
    "ForecastAccuracyDrift",
}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool")
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", str(ALERTS_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_check_config() -> None:
    result = _promtool("check", "config", str(PROMETHEUS_YML))
    assert result.returncode == 0, result.stdout + result.stderr
    # The config loads the alert rules: the rule file must be found and valid too.
    assert "SUCCESS: 1 rule files found" in result.stdout, result.stdout


def test_alert_rules_cover_the_runbook() -> None:
    rules = yaml.safe_load(ALERTS_YML.read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert alerts.keys() >= ALERT_NAMES
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"], name
    drift = alerts["ForecastAccuracyDrift"]["expr"]
    for metric in (
        "forecast_live_abs_error_total",
        "forecast_live_scored_total",
        "forecast_offline_mae",
    ):
        assert metric in drift
