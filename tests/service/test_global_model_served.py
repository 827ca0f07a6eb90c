"""A global model of many series is served unchanged: one stream per series, each with
its own scaling statistics in its declared state, streaming like the offline graph."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from svc_helpers import LiveServer, design, manifest, obs_body, offline_forecast

GLOBAL = "tiny-global"


@pytest.fixture(scope="module")
def global_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.tiny import make_tiny_artifact

    root = tmp_path_factory.mktemp("global-models")
    make_tiny_artifact(root, "global")
    return root


def test_one_global_model_serves_a_stream_per_series_like_its_offline_graph(
    global_dir: Path, serve: Callable[..., LiveServer]
) -> None:
    from training.tiny import TINY_SENSORS, tiny_panel_frame

    server = serve(models=global_dir)
    m = manifest(global_dir, GLOBAL)
    assert m["state"][-1]["name"] == "stream_stats"
    frame = tiny_panel_frame()
    rows = 40
    streams = {}
    for k, sensor in enumerate(TINY_SENSORS):
        part = frame[frame["Sensor"] == sensor].iloc[-rows:]
        stamps = np.asarray(
            part["Date_Time"].map(lambda t: np.datetime64(str(t)[:19], "s")), dtype="datetime64[s]"
        )
        seconds = stamps.astype(np.int64).astype(np.float64)
        values = part[["Count"]].to_numpy(dtype=np.float64)
        streams[f"sensor-{k}"] = (seconds, values, design(m, seconds, values))
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(rows):  # the streams interleaved, one observation at a time
            for stream, (seconds, values, x) in streams.items():
                url = f"/v1/models/{GLOBAL}/streams/{stream}/observations"
                r = client.post(url, json={"observations": [obs_body(seconds[i], values[i], i)]})
                assert r.status_code == 200, r.text
                if i in (0, 1, 17, rows - 1):
                    expected = offline_forecast(global_dir, GLOBAL, x[: i + 1])
                    got = np.array(r.json()["forecast"]["values"], dtype=np.float32)
                    np.testing.assert_allclose(
                        got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max()
                    )
    # The streams' forecasts differ in scale as their series do (their own statistics).
    last = {s: offline_forecast(global_dir, GLOBAL, x) for s, (_, _, x) in streams.items()}
    sizes = sorted(float(np.abs(f).mean()) for f in last.values())
    assert sizes[-1] > 1.5 * sizes[0]
