"""A seasonal-memory artifact is served unchanged: its ring of past values is just more
declared state. And every model's verdict is visible in GET /v1/models/{m}."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from svc_helpers import SENSOR, LiveServer, design, held_out, manifest, obs_body, offline_forecast

SEASONAL = "tiny-seasonal"


@pytest.fixture(scope="module")
def seasonal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.tiny import make_tiny_artifact

    root = tmp_path_factory.mktemp("seasonal-models")
    make_tiny_artifact(root, "seasonal")
    return root


def test_the_verdict_is_served_with_the_model(models_dir: Path, client: httpx.Client) -> None:
    served = client.get(f"/v1/models/{SENSOR}").json()
    verdict = manifest(models_dir, SENSOR)["verdict"]
    assert served["verdict"] == verdict
    assert verdict["metric"] == "mae" and verdict["text"]


def test_a_seasonal_memory_model_streams_like_its_offline_graph(
    seasonal_dir: Path, serve: Callable[..., LiveServer]
) -> None:
    server = serve(models=seasonal_dir)
    m = manifest(seasonal_dir, SEASONAL)
    assert [s["name"] for s in m["state"]][-2:] == ["history", "history_seen"]
    assert m["memory"] == {"kind": "seasonal", "seasons": [4, 48]}
    seconds, values = held_out(seasonal_dir, SEASONAL, 70)  # more than the 48-step ring
    x = design(m, seconds, values)
    url = f"/v1/models/{SEASONAL}/streams/s/observations"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get(f"/v1/models/{SEASONAL}").json()["bytes_per_stream"] == 260
        for i in range(len(seconds)):
            r = client.post(url, json={"observations": [obs_body(seconds[i], values[i], seq=i)]})
            assert r.status_code == 200, r.text
            if i in (0, 3, 47, 48, 69):
                expected = offline_forecast(seasonal_dir, SEASONAL, x[: i + 1])
                got = np.array(r.json()["forecast"]["values"], dtype=np.float32)
                np.testing.assert_allclose(
                    got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()
                )
