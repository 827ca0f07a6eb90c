"""Inputs that must be refused before they step or change anything: timestamps out of
range (or too late for the forecast horizon) and values the model cannot take."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from svc_helpers import SENSOR, STOCK, held_out

BAD_TS = [
    253402300799,
    "9999-12-31T23:00:00-12:00",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59Z",
]


@pytest.mark.parametrize("model", [SENSOR, STOCK])
@pytest.mark.parametrize("ts", BAD_TS)
def test_out_of_range_ts_is_422_everywhere_and_creates_nothing(
    models_dir: Path, client: httpx.Client, model: str, ts: object
) -> None:
    values = [4000.0, 20.0] if model == SENSOR else [2600.0]
    bad = {"ts": ts, "values": values}
    good = {"ts": "2014-06-01T00:00:00Z", "values": values}
    base = f"/v1/models/{model}"
    r = client.post(f"{base}/streams/bad/observations", json={"observations": [bad]})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith("observations[0].ts: ")
    assert client.get(f"{base}/streams/bad").status_code == 404
    r = client.post(f"{base}/forecast", json={"observations": [good, bad]})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["message"].startswith("observations[1].ts: ")
    body = {
        "streams": [
            {"stream_id": "ok", "observations": [good]},
            {"stream_id": "bad", "observations": [bad]},
        ]
    }
    r = client.post(f"{base}/observations", json=body)
    assert r.status_code == 200, r.text
    ok, err = r.json()["results"]
    assert ok["stream_id"] == "ok" and ok["duplicate"] is False and len(ok["forecast"]["ts"])
    assert err["status"] == 422 and "ts" in err["error"]["message"]
    assert client.get(f"{base}/streams/bad").status_code == 404
    assert client.get(f"{base}/streams/ok").status_code == 200
    # A live stream: the same ts as its next observation, alone and in the vectorised lane.
    for _ in range(2):
        r = client.post(f"{base}/observations", json={"streams": body["streams"][1:]})
        assert r.json()["results"][0]["status"] == 422
        r = client.post(f"{base}/streams/ok/observations", json={"observations": [bad]})
        assert r.status_code == 422
        r = client.post(f"{base}/observations", json={"streams": [
            {"stream_id": "ok", "observations": [bad]}]})  # fmt: skip
        assert r.json()["results"][0]["status"] == 422
    assert client.get(f"{base}/streams/ok").json()["ts"] == "2014-06-01T00:00:00Z"


def test_latest_ts_whose_horizon_fits_is_accepted(models_dir: Path, client: httpx.Client) -> None:
    _, values = held_out(models_dir, SENSOR, 1)
    svc = client.get(f"/v1/models/{SENSOR}").json()
    last = 253402300799 - svc["horizon"] * svc["frequency_seconds"]
    body = {"observations": [{"ts": last, "values": [float(v) for v in values[0]]}]}
    r = client.post(f"/v1/models/{SENSOR}/streams/edge/observations", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["forecast"]["ts"][-1] == "9999-12-31T23:59:59Z"
    body["observations"][0]["ts"] = last + 1
    r = client.post(f"/v1/models/{SENSOR}/streams/edge2/observations", json=body)
    assert r.status_code == 422


def test_business_day_horizon_is_checked(client: httpx.Client) -> None:
    """9999-12-31 is a Friday: the stock model's horizon of business days goes past it."""
    body = {"observations": [{"ts": "9999-12-31", "value": 2600.0}]}
    r = client.post(f"/v1/models/{STOCK}/streams/late/observations", json=body)
    assert r.status_code == 422 and "horizon" in r.json()["error"]["message"]
    body = {"observations": [{"ts": "9999-11-01", "value": 2600.0}]}
    r = client.post(f"/v1/models/{STOCK}/streams/late/observations", json=body)
    assert r.status_code == 200, r.text
