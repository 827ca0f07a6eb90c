"""Docker is not available here: keep the Dockerfiles, docker-compose.yml, Prometheus
and Grafana files honest by checking that what they reference exists and agrees with
the service (its Settings, its routes, its /metrics)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from deploy_support import (
    COMPOSE,
    DASHBOARD_JSON,
    DEPLOY,
    DOCKERFILE,
    DOCKERFILE_TRAIN,
    GRAFANA,
    PROMETHEUS_YML,
    ROOT,
    TINY_MODEL,
    Traffic,
    alert_rules,
    dashboard,
    dashboard_queries,
    dockerfile_copy_sources,
    dockerfile_env,
    dockerfile_instructions,
    exposed_sample_names,
    metric_names,
    running_service,
)

from service.settings import Settings

ENV_PREFIX = Settings.model_config["env_prefix"]
HEALTHCHECK_PATH = "/healthz"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _settings_env_names() -> set[str]:
    return {f"{ENV_PREFIX}{name}".upper() for name in Settings.model_fields}


def _container_port(mapping: str) -> int:
    # "8000:8000", "127.0.0.1:8000:8000", "8000:8000/tcp"
    return int(str(mapping).split(":")[-1].split("/")[0])


# --- Dockerfiles ---------------------------------------------------------------------


@pytest.mark.parametrize("path", [DOCKERFILE, DOCKERFILE_TRAIN], ids=lambda p: p.name)
def test_dockerfile_copies_only_existing_files(path: Path) -> None:
    sources = dockerfile_copy_sources(dockerfile_instructions(path))
    assert sources, f"{path.name} copies nothing"
    missing = [s for s in sources if not (ROOT / s).exists()]
    assert not missing, f"{path.name} copies files missing from the repo: {missing}"


@pytest.mark.parametrize("path", [DOCKERFILE, DOCKERFILE_TRAIN], ids=lambda p: p.name)
def test_dockerignore_keeps_what_is_copied(path: Path) -> None:
    # BuildKit reads <Dockerfile>.dockerignore; a COPY of an ignored path fails the build.
    ignore_file = path.with_name(path.name + ".dockerignore")
    ignore = [
        line.strip()
        for line in ignore_file.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert ignore[0] == "*", "expected an allow-list: '*' first, then '!path' lines"
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for source in dockerfile_copy_sources(dockerfile_instructions(path)):
        assert source.rstrip("/") in allowed, f"{source} is excluded by the .dockerignore"


def test_service_dockerfile_is_slim_torchless_and_non_root() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    keywords = [k for k, _ in instructions]
    froms = [a for k, a in instructions if k == "FROM"]
    assert froms == ["python:3.11-slim"]
    runs = " ".join(a for k, a in instructions if k == "RUN")
    assert re.search(r"pip install \.(\s|$)", runs), "the service installs the project w/o extras"
    assert "[train]" not in runs and "torch" not in runs
    users = [a for k, a in instructions if k == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert keywords.index("USER") < keywords.index("CMD")
    cmd = [a for k, a in instructions if k == "CMD"]
    assert cmd == ['["python", "-m", "service"]']
    assert "models" in dockerfile_copy_sources(instructions)


def test_default_models_ship_in_the_image() -> None:
    # The image copies models/: the two default artifacts must be there.
    for name in ("elec-demand", "sp500"):
        assert (ROOT / "models" / name / "1" / "manifest.json").is_file(), f"models/{name}/1"


def test_service_dockerfile_env_matches_settings() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    env = dockerfile_env(instructions)
    forecast_env = {k for k in env if k.startswith(ENV_PREFIX)}
    assert forecast_env <= _settings_env_names(), forecast_env - _settings_env_names()
    settings = Settings(
        **{k[len(ENV_PREFIX) :].lower(): v for k, v in env.items() if k in forecast_env}
    )
    assert settings.host == "0.0.0.0"
    assert str(settings.models_dir) == "/app/models"
    exposed = [int(a.split("/")[0]) for k, a in instructions if k == "EXPOSE"]
    assert exposed == [settings.port]


def test_healthcheck_probes_healthz_on_the_service_port() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    (healthcheck,) = [a for k, a in instructions if k == "HEALTHCHECK"]
    assert "CMD python -c" in healthcheck and "urllib.request" in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck
    assert "os.environ['FORECAST_PORT']" in healthcheck
    assert re.search(
        r"http://127\.0\.0\.1:' \+ os\.environ\['FORECAST_PORT'\] \+ '/healthz'", healthcheck
    )


def test_train_dockerfile_installs_the_train_extra() -> None:
    runs = " ".join(a for k, a in dockerfile_instructions(DOCKERFILE_TRAIN) if k == "RUN")
    assert '".[train]"' in runs


# --- docker-compose.yml --------------------------------------------------------------


def test_compose_has_the_stack() -> None:
    services = _compose()["services"]
    assert set(services) == {"forecast", "redis", "prometheus", "grafana"}
    build = services["forecast"]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


def test_compose_mounts_exist() -> None:
    for name, service in _compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (COMPOSE.parent / source).exists(), f"{name} mounts missing {source}"


def test_compose_service_env_matches_settings() -> None:
    forecast = _compose()["services"]["forecast"]
    env = {k: str(v) for k, v in forecast["environment"].items()}
    unknown = {k for k in env if k.startswith(ENV_PREFIX)} - _settings_env_names()
    assert not unknown, f"not Settings fields: {unknown}"
    settings = Settings(**{k[len(ENV_PREFIX) :].lower(): v for k, v in env.items()})
    # Redis is wired up, but the memory backend stays until the Redis issue lands.
    assert settings.state_backend == "memory"
    assert settings.redis_url == "redis://redis:6379/0"
    assert [_container_port(p) for p in forecast["ports"]] == [settings.port]
    # The image's defaults agree with the compose file.
    image_env = dockerfile_env(dockerfile_instructions(DOCKERFILE))
    for key in ("FORECAST_HOST", "FORECAST_PORT", "FORECAST_MODELS_DIR"):
        assert image_env[key] == env[key], key


def test_compose_grafana_is_anonymous_viewer_on_3000() -> None:
    grafana = _compose()["services"]["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert grafana["ports"] == ["3000:3000"]


# --- Prometheus config ---------------------------------------------------------------


def test_prometheus_scrapes_the_service_metrics_path_and_port() -> None:
    compose = _compose()
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "forecast"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    port = Settings(
        **{"port": compose["services"]["forecast"]["environment"]["FORECAST_PORT"]}
    ).port
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    assert targets == [f"forecast:{port}"]
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    for rule_file in config["rule_files"]:
        assert f"./deploy/prometheus/{rule_file}:/etc/prometheus/{rule_file}:ro" in mounts


# --- Grafana provisioning ------------------------------------------------------------


def _container_path(service: dict[str, Any], host_path: Path) -> str:
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if (COMPOSE.parent / source).resolve() == host_path.resolve():
            return target
    raise AssertionError(f"{host_path} is not mounted")


def test_grafana_provisioning_points_at_the_dashboard() -> None:
    grafana = _compose()["services"]["grafana"]
    provisioning = _container_path(grafana, GRAFANA / "provisioning")
    assert provisioning == "/etc/grafana/provisioning"
    dashboards_dir = _container_path(grafana, DASHBOARD_JSON.parent)
    providers = [
        p
        for f in sorted((GRAFANA / "provisioning" / "dashboards").glob("*.yml"))
        for p in yaml.safe_load(f.read_text())["providers"]
    ]
    assert [p["options"]["path"] for p in providers] == [dashboards_dir]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{DASHBOARD_JSON.name}"


def test_grafana_datasource_is_the_compose_prometheus_and_the_dashboards_uid() -> None:
    compose = _compose()
    datasources = [
        d
        for f in sorted((GRAFANA / "provisioning" / "datasources").glob("*.yml"))
        for d in yaml.safe_load(f.read_text())["datasources"]
    ]
    (prom,) = [d for d in datasources if d["type"] == "prometheus"]
    port = _container_port(compose["services"]["prometheus"]["ports"][0])
    assert prom["url"] == f"http://prometheus:{port}"
    dash = dashboard()
    used = {
        json_ds["uid"]
        for panel in dash["panels"]
        for json_ds in [panel.get("datasource")]
        + [t.get("datasource") for t in panel.get("targets", [])]
        if json_ds
    }
    used |= {v["datasource"]["uid"] for v in dash["templating"]["list"] if "datasource" in v}
    assert used == {prom["uid"]}


def test_dashboard_covers_the_issue() -> None:
    text = " ".join(q for _, q in dashboard_queries(dashboard()))
    for metric in (
        "forecast_http_requests_total",
        "forecast_http_request_duration_seconds_bucket",
        "forecast_inference_duration_seconds_bucket",
        "forecast_batch_rows_bucket",
        "forecast_queue_depth",
        "forecast_live_streams",
        "forecast_stream_evictions_total",
        "forecast_stream_expirations_total",
        "forecast_observations_total",
        "forecast_live_abs_error_total",
        "forecast_live_scored_total",
        "forecast_offline_mae",
        "forecast_model_info",
    ):
        assert metric in text, metric
    assert DEPLOY in DASHBOARD_JSON.parents


# --- Against the service itself ------------------------------------------------------


def _route_paths(routes: list[Any], prefix: str = "") -> Iterator[str]:
    """Path templates of an app's routes, through included routers (FastAPI wraps an
    included router; older versions copy its routes, newer keep `original_router`)."""
    for route in routes:
        if hasattr(route, "original_router"):
            context = getattr(route, "include_context", None)
            inner_prefix = getattr(context, "prefix", "") or ""
            yield from _route_paths(route.original_router.routes, prefix + inner_prefix)
        elif hasattr(route, "routes") and not hasattr(route, "endpoint"):
            yield from _route_paths(route.routes, prefix + getattr(route, "path", ""))
        elif getattr(route, "path", None):
            yield prefix + route.path


@pytest.fixture(scope="module")
def served_metrics(
    tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[set[str], str]:
    """(route paths of the app, /metrics text of the running service after traffic)."""
    from service.app import create_app

    app = create_app(Settings(models_dir=tiny_models_dir, snapshot_path=None))
    paths = set(_route_paths(app.routes))
    env = {"FORECAST_MAX_STREAMS": "4", "FORECAST_ACCURACY_SAMPLE_FRACTION": "1"}
    log_dir = tmp_path_factory.mktemp("service")
    with (
        running_service(tiny_models_dir, log_dir, env) as url,
        httpx.Client(base_url=url, timeout=10) as client,
    ):
        Traffic(client, TINY_MODEL).burst(streams=6, steps=4)
        assert client.get(HEALTHCHECK_PATH).status_code == 200
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
    return paths, metrics.text


def test_healthcheck_path_is_a_route_of_the_app(served_metrics: tuple[set[str], str]) -> None:
    paths, _ = served_metrics
    healthcheck = " ".join(a for k, a in dockerfile_instructions(DOCKERFILE) if k == "HEALTHCHECK")
    assert HEALTHCHECK_PATH in healthcheck
    assert HEALTHCHECK_PATH in paths


def test_every_metric_in_dashboard_and_alerts_is_exposed(
    served_metrics: tuple[set[str], str],
) -> None:
    _, text = served_metrics
    exposed = exposed_sample_names(text)
    used = {name for _, expr in dashboard_queries(dashboard()) for name in metric_names(expr)}
    used |= {name for rule in alert_rules() for name in metric_names(rule["expr"])}
    used.discard("up")  # made by Prometheus itself
    missing = sorted(used - exposed)
    assert not missing, f"used by the dashboard/alerts but not in /metrics: {missing}"
