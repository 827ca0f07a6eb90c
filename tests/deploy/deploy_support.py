"""Paths of the deployment files and the external binaries the deploy tests need."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERFILE_TRAIN = DEPLOY / "Dockerfile.train"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS_YML = DEPLOY / "prometheus" / "alerts.yml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD_JSON = GRAFANA / "dashboards" / "forecast.json"

# Debian's `prometheus` package puts both binaries here; PATH wins if set up otherwise.
_DEBIAN_BIN = {"prometheus": "/usr/bin/prometheus", "promtool": "/usr/bin/promtool"}


def require_binary(name: str) -> str:
    """The path of a binary the test needs; FAILS (never skips) when it is missing."""
    found = shutil.which(name) or (
        _DEBIAN_BIN[name] if Path(_DEBIAN_BIN.get(name, "/nonexistent")).exists() else None
    )
    if found is None:
        pytest.fail(
            f"`{name}` not found on PATH nor at {_DEBIAN_BIN.get(name)}: install the Debian "
            "package with `apt-get install -y prometheus` (.ci/run does).",
            pytrace=False,
        )
    return found


# --- Dockerfile -------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        pending += line
        keyword, _, args = pending.partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    assert not pending, f"{path}: dangling line continuation"
    return out


def dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in instructions:
        if keyword == "ENV":
            for item in shlex.split(args):
                key, sep, value = item.partition("=")
                assert sep, f"ENV without '=': {args!r} (use the KEY=value form)"
                env[key] = value
    return env


def dockerfile_copy_sources(instructions: list[tuple[str, str]]) -> list[str]:
    """Sources of COPY/ADD from the build context (not --from= other stages)."""
    sources: list[str] = []
    for keyword, args in instructions:
        if keyword not in {"COPY", "ADD"}:
            continue
        words = shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue
        words = [w for w in words if not w.startswith("--")]
        sources.extend(words[:-1])
    return sources


# --- Dashboard and PromQL ----------------------------------------------------------

# Values put in for Grafana's variables when a query is run outside Grafana.
GRAFANA_VARIABLES = {
    "__rate_interval": "15s",
    "__interval": "15s",
    "__range": "1m",
}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_JSON.read_text())


def dashboard_panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    panels: list[dict[str, Any]] = []
    for panel in dash["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_queries(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title / refId, PromQL) for every target of every panel."""
    queries = []
    for panel in dashboard_panels(dash):
        for target in panel.get("targets", []):
            if target.get("hide"):
                continue
            queries.append((f"{panel['title']} / {target['refId']}", target["expr"]))
    return queries


def substitute_variables(expr: str, dash: dict[str, Any]) -> str:
    """Replace Grafana variables: built-ins by GRAFANA_VARIABLES, the dashboard's own by
    their "All" value (.*), so the query covers every model and horizon step."""
    values = dict(GRAFANA_VARIABLES)
    for var in dash.get("templating", {}).get("list", []):
        values[var["name"]] = var.get("allValue") or ".*"

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in values, f"unknown Grafana variable ${name} in {expr!r}"
        return values[name]

    out = re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", repl, expr)
    assert "$" not in out, out
    return out


_PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "group_left",
    "group_right", "rate", "irate", "increase", "histogram_quantile", "max_over_time",
    "absent", "and", "or", "unless", "le", "bool", "offset", "vector", "scalar",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (anything forecast_*, plus up)."""
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    names = set(re.findall(r"\b(forecast_[a-z0-9_]+|up)\b", without_labels))
    return names - _PROMQL_WORDS


def alert_rules() -> list[dict[str, Any]]:
    rules = yaml.safe_load(ALERTS_YML.read_text())
    return [r for g in rules["groups"] for r in g["rules"]]


def exposed_sample_names(metrics_text: str) -> set[str]:
    """Sample names in a Prometheus text exposition (..._bucket, ..._total, ...)."""
    names = set()
    for line in metrics_text.splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names
