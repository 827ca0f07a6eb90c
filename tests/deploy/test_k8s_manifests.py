"""deploy/k8s/: every manifest valid against the Kubernetes schemas (kubernetes-validate,
strict, offline), kustomize lists them all, and they agree with the service: settings,
probe paths, port, selectors, and the hash key nginx and ingress-nginx share."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_support import DEPLOY, TINY_MODEL

from service.app import create_app
from service.settings import Settings

K8S = DEPLOY / "k8s"
KUBERNETES_VERSION = "1.30.0"
NOT_OBJECTS = {"kustomization.yaml", "prometheus-adapter-rules.yaml"}


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def objects() -> dict[str, dict[str, Any]]:
    """kind/name -> object, for every manifest kustomize applies."""
    out = {}
    for name in yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"]:
        for d in docs(K8S / name):
            out[f"{d['kind']}/{d['metadata']['name']}"] = d
    return out


@pytest.mark.parametrize(
    "path", sorted(p for p in K8S.glob("*.yaml") if p.name not in NOT_OBJECTS), ids=lambda p: p.name
)
def test_manifest_is_valid_kubernetes_strict(path: Path) -> None:
    for d in docs(path):
        kubernetes_validate.validate(d, KUBERNETES_VERSION, strict=True)


def test_strict_validation_refuses_an_unknown_field() -> None:
    bad = docs(K8S / "service.yaml")[0]
    bad["spec"]["portz"] = []
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_object_file() -> None:
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - NOT_OBJECTS - {"ingress-nginx-controller.yaml"}
    assert listed == on_disk


def test_the_deployment_agrees_with_the_service(tiny_models_dir: Path) -> None:
    objs = objects()
    config = objs["ConfigMap/forecast-config"]["data"]
    settings = Settings(**{k.removeprefix("FORECAST_").lower(): v for k, v in config.items()})
    assert settings.state_backend == "redis" and settings.snapshot_path is None
    redis_service = objs["Service/forecast-redis"]
    assert settings.redis_url == f"redis://{redis_service['metadata']['name']}:6379/0"
    deploy = objs["Deployment/forecast"]
    pod = deploy["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["envFrom"] == [{"configMapRef": {"name": "forecast-config"}}]
    assert container["ports"][0]["containerPort"] == settings.port
    routes = {
        getattr(r, "path", None)
        for r in create_app(Settings(models_dir=tiny_models_dir, snapshot_path=None)).routes
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" in routes
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in routes
    assert deploy["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 15
    assert container["resources"]["requests"] and container["resources"]["limits"]
    labels = pod["metadata"]["labels"]
    for kind in ("Service/forecast", "PodDisruptionBudget/forecast"):
        spec = objs[kind]["spec"]
        selector = spec["selector"].get("matchLabels", spec["selector"])
        assert selector.items() <= labels.items(), kind
    hpa = objs["HorizontalPodAutoscaler/forecast"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "forecast",
    }
    assert any(m["type"] == "Pods" for m in hpa["metrics"])
    sts = objs["StatefulSet/forecast-redis"]["spec"]
    args = sts["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes" and sts["volumeClaimTemplates"]
    assert TINY_MODEL  # the fixture built a real artifact the app could serve


def _maps(text: str) -> list[str]:
    blocks = re.findall(r"map \$\w+ \$\w+ \{[^}]*\}", text)
    return [re.sub(r"\s+", " ", b) for b in blocks if "forecast_connection" not in b]


def test_ingress_hashes_on_the_same_stream_key_as_the_nginx_config() -> None:
    ingress = objects()["Ingress/forecast"]
    key = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/upstream-hash-by"]
    controller = docs(K8S / "ingress-nginx-controller.yaml")[0]
    snippet = controller["data"]["http-snippet"]
    assert f"map $uri {key} " in re.sub(r"\s+", " ", snippet)
    nginx_conf = (DEPLOY / "nginx" / "forecast.conf").read_text()
    assert _maps(snippet) == _maps(nginx_conf) and len(_maps(snippet)) == 2
    assert f"hash {key} consistent;" in nginx_conf
