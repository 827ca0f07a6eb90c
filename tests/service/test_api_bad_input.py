"""Inputs that must be refused before they step or change anything: timestamps out of
range (or too late for the forecast horizon) and values the model cannot take."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from svc_helpers import SENSOR, STOCK, design, held_out, median_index, offline_forecast

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
    good = {"ts": "2014-06-02T00:00:00Z", "values": values}  # a Monday: stock models step Mon-Fri
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
    assert client.get(f"{base}/streams/ok").json()["ts"] == "2014-06-02T00:00:00Z"


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


def _metric_lines(c: httpx.Client, model: str) -> list[str]:
    text = c.get("/metrics").text
    names = ("forecast_live_abs_error_total", "forecast_live_scored_total")
    return sorted(
        line for line in text.splitlines() if line.startswith(names) and f'"{model}"' in line
    )


def _samples(lines: list[str]) -> dict[str, float]:
    return {k: float(v) for k, v in (line.rsplit(" ", 1) for line in lines)}


def _stock_state(c: httpx.Client, sid: str) -> dict:
    return c.get(f"/v1/models/{STOCK}/streams/{sid}").json()


@pytest.mark.parametrize("price", [-5.0, 0.0, 0])
def test_price_at_or_below_min_exclusive_is_422_and_changes_nothing(
    client: httpx.Client, price: float
) -> None:
    base = f"/v1/models/{STOCK}"
    first = {"observations": [{"ts": "2018-12-03", "value": 2600.0}]}
    assert client.post(f"{base}/streams/p/observations", json=first).status_code == 200
    before, metrics = _stock_state(client, "p"), _metric_lines(client, STOCK)
    for body in (
        {"observations": [{"ts": "2018-12-04", "value": price}]},
        {"observations": [{"ts": "2018-12-04", "values": [price]}]},
        {
            "observations": [
                {"ts": "2018-12-04", "value": 2601.0},
                {"ts": "2018-12-05", "value": price},
            ]
        },
    ):
        r = client.post(f"{base}/streams/p/observations", json=body)
        assert r.status_code == 422, r.text
        message = r.json()["error"]["message"]
        assert "must be > 0 (close is a price)" in message
        assert message.startswith(("observations[0].value", "observations[1].value"))
    r = client.post(
        f"{base}/forecast", json={"observations": [{"ts": "2018-12-04", "value": price}]}
    )
    assert r.status_code == 422
    assert client.post(f"{base}/streams/q/observations", json={"observations": [
        {"ts": "2018-12-03", "value": price}]}).status_code == 422  # fmt: skip
    many = {
        "streams": [
            {"stream_id": "p", "observations": [{"ts": "2018-12-04", "values": [price]}]},
            {"stream_id": "q", "observations": [{"ts": "2018-12-04", "values": [2600.0]}]},
        ]
    }
    bad, good = client.post(f"{base}/observations", json=many).json()["results"]
    assert bad["status"] == 422 and bad["error"]["message"] == (
        "streams[0].observations[0].values[0]: must be > 0 (close is a price), "
        f"got {float(price)!r}"
    )
    assert good["duplicate"] is False
    assert _stock_state(client, "p") == before
    assert _metric_lines(client, STOCK) == metrics
    ok = client.post(f"{base}/streams/p/observations", json={"observations": [
        {"ts": "2018-12-04", "value": 0.01}]})  # fmt: skip
    assert ok.status_code == 200


def test_non_finite_model_answer_fails_that_stream_only(own_models: Path, serve) -> None:
    """Without its min_exclusive the stock graph answers NaN for a negative price (it takes
    the log): that stream gets 422 non_finite_forecast, nothing is stored or scored, and
    the other streams of the same ORT call apply."""
    path = own_models / STOCK / "1" / "manifest.json"
    manifest = json.loads(path.read_text())
    for feat in manifest["features"]:
        feat.pop("min_exclusive", None)
    path.write_text(json.dumps(manifest))
    server = serve(models=own_models)
    base = f"/v1/models/{STOCK}"
    with httpx.Client(base_url=server.url) as client:
        for sid in ("s", "t"):
            body = {"observations": [{"ts": "2018-12-03", "values": [2600.0]}]}
            assert client.post(f"{base}/streams/{sid}/observations", json=body).status_code == 200
        before, metrics = _stock_state(client, "s"), _metric_lines(client, STOCK)
        bad_obs = {"ts": "2018-12-04", "values": [-5.0]}
        r = client.post(f"{base}/streams/s/observations", json={"observations": [bad_obs]})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "non_finite_forecast"
        r = client.post(f"{base}/forecast", json={"observations": [bad_obs]})
        assert r.status_code == 422 and r.json()["error"]["code"] == "non_finite_forecast"
        r = client.post(f"{base}/streams/new/observations", json={"observations": [bad_obs]})
        assert r.status_code == 422
        assert client.get(f"{base}/streams/new").status_code == 404
        # The vectorised block: s (bad) and t (good) in one ORT call; only s fails.
        many = {
            "streams": [
                {"stream_id": "s", "observations": [bad_obs]},
                {"stream_id": "t", "observations": [{"ts": "2018-12-04", "values": [2601.0]}]},
            ]
        }
        bad, good = client.post(f"{base}/observations", json=many).json()["results"]
        assert bad["status"] == 422 and bad["error"]["code"] == "non_finite_forecast"
        assert good["duplicate"] is False and good["ts"] == "2018-12-04T00:00:00Z"
        assert _stock_state(client, "s") == before
        after = _metric_lines(client, STOCK)
        assert all("nan" not in line.lower() for line in after)
        # Only t's one-step error was scored: one more step-1 score, and exactly the
        # error of t's truth against the median of its forecast from 2018-12-03 (ORT on
        # the graph here, not the service's answer).
        spec = json.loads(path.read_text())
        start = np.array([1543795200.0])  # 2018-12-03T00:00:00Z
        told = offline_forecast(own_models, STOCK, design(spec, start, np.array([[2600.0]])))
        step1 = abs(2601.0 - float(told[0, median_index(spec)]))
        was, now = _samples(metrics), _samples(after)
        changed = {k for k in now if now[k] != was.get(k)}
        scored = f'forecast_live_scored_total{{horizon_step="1",model="{STOCK}"}}'
        error = f'forecast_live_abs_error_total{{horizon_step="1",model="{STOCK}"}}'
        assert changed == {scored, error}
        assert now[scored] == was[scored] + 1
        np.testing.assert_allclose(now[error] - was[error], step1, rtol=1e-4)


def test_failed_request_leaves_live_accuracy_untouched(own_models: Path, serve) -> None:
    """A request whose first steps succeed and a later one fails (NaN from a price the
    manifest no longer refuses) scores nothing and keeps no ring, new stream or not."""
    path = own_models / STOCK / "1" / "manifest.json"
    manifest = json.loads(path.read_text())
    for feat in manifest["features"]:
        feat.pop("min_exclusive", None)
    path.write_text(json.dumps(manifest))
    server = serve(models=own_models)  # every stream sampled (test settings)
    base = f"/v1/models/{STOCK}"
    model = server.service.models[STOCK]

    def ring_of(sid: str) -> tuple | None:
        ring = model.accuracy._rings.get(sid)
        return None if ring is None else (ring.step, ring.origins.tolist())

    with httpx.Client(base_url=server.url) as client:
        for day in ("2018-12-03", "2018-12-04"):
            body = {"observations": [{"ts": day, "values": [2600.0]}]}
            assert client.post(f"{base}/streams/s/observations", json=body).status_code == 200
        before, metrics = _stock_state(client, "s"), _metric_lines(client, STOCK)
        ring = server.call(lambda: ring_of("s"))
        # A good day, a skipped day (filled), then a NaN-making price.
        obs = [{"ts": "2018-12-05", "values": [2601.0]}, {"ts": "2018-12-07", "values": [-5.0]}]
        for sid in ("s", "fresh"):
            r = client.post(f"{base}/streams/{sid}/observations", json={"observations": obs})
            assert r.status_code == 422 and r.json()["error"]["code"] == "non_finite_forecast"
        many = {"streams": [{"stream_id": "s", "observations": obs},
                            {"stream_id": "fresh2", "observations": obs}]}  # fmt: skip
        for result in client.post(f"{base}/observations", json=many).json()["results"]:
            assert result["status"] == 422
        assert _stock_state(client, "s") == before
        assert _metric_lines(client, STOCK) == metrics
        assert server.call(lambda: ring_of("s")) == ring
        assert server.call(lambda: (ring_of("fresh"), ring_of("fresh2"))) == (None, None)
