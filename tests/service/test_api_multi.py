"""The multi-stream endpoint's vectorised lane against one-stream requests."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
from svc_helpers import (
    SENSOR,
    STOCK,
    design,
    held_out,
    iso,
    manifest,
    median_index,
    metric_samples,
    obs_body,
    offline_forecast,
)

MANY = f"/v1/models/{SENSOR}/observations"


def _single(c: httpx.Client, sid: str, obs: list[dict], model: str = SENSOR) -> dict:
    r = c.post(f"/v1/models/{model}/streams/{sid}/observations", json={"observations": obs})
    return {"status": r.status_code, **r.json()}


def test_mixed_multi_stream_request_equals_single_requests(models_dir: Path, serve) -> None:
    seconds, values = held_out(models_dir, SENSOR, 8)
    # No sampled streams, small blocks: the vectorised lane and its chunking run.
    multi = serve(accuracy_sample_fraction=0.0, max_batch_rows=16)
    single = serve(accuracy_sample_fraction=0.0, snapshot_path="")
    n = 60
    with httpx.Client(base_url=multi.url) as m, httpx.Client(base_url=single.url) as s:
        for step in range(3):
            streams = [
                {
                    "stream_id": f"v{k}",
                    "observations": [obs_body(seconds[step], values[step] + k, step)],
                }
                for k in range(n)
            ]
            got = m.post(MANY, json={"streams": streams}).json()["results"]
            for k in range(n):
                want = _single(s, f"v{k}", streams[k]["observations"])
                np.testing.assert_allclose(
                    got[k]["forecast"]["values"], want["forecast"]["values"], rtol=1e-5, atol=1e-3
                )
                assert got[k]["forecast"]["ts"] == want["forecast"]["ts"]
                assert (got[k]["seq"], got[k]["ts"], got[k]["filled"]) == (
                    step,
                    iso(seconds[step]),
                    0,
                )
        # One request, every kind of entry: next step, retry, backwards, gap, missing
        # value, new stream, reset.
        cases = {
            "v0": [obs_body(seconds[3], values[3], 3)],
            "v1": [obs_body(seconds[2], values[2] + 1, 2)],
            "v2": [obs_body(seconds[1], values[1] + 2, 1)],
            "v3": [obs_body(seconds[5], values[5] + 3, 5)],
            "v4": [{"ts": iso(seconds[3]), "seq": 3, "values": [None, 20.0]}],
            "fresh": [obs_body(seconds[0], values[0], 0)],
            "v5": [obs_body(seconds[7], values[7], 0)],
        }
        body = {"streams": [{"stream_id": k, "observations": v} for k, v in cases.items()]}
        body["streams"][-1]["reset"] = True
        got = {r["stream_id"]: r for r in m.post(MANY, json=body).json()["results"]}
        assert got["v1"]["duplicate"] is True
        assert got["v2"]["status"] == 409 and got["v2"]["error"]["code"] == "out_of_order"
        assert got["v3"]["filled"] == 2 and got["v4"]["filled"] == 1
        for sid, obs in cases.items():
            if sid == "v5":
                r = s.post(
                    f"/v1/models/{SENSOR}/streams/v5/observations",
                    json={"observations": obs, "reset": True},
                )
                want = {"status": r.status_code, **r.json()}
            else:
                want = _single(s, sid, obs)
            if "forecast" in want:
                np.testing.assert_allclose(
                    got[sid]["forecast"]["values"], want["forecast"]["values"], rtol=1e-5
                )
                assert got[sid]["filled"] == want["filled"]
            else:
                assert got[sid]["status"] == want["status"]
        for k in range(n):
            a = m.get(f"/v1/models/{SENSOR}/streams/v{k}").json()
            b = s.get(f"/v1/models/{SENSOR}/streams/v{k}").json()
            assert (a["seq"], a["count"], a["ts"]) == (b["seq"], b["count"], b["ts"])
            np.testing.assert_allclose(a["forecast"]["values"], b["forecast"]["values"], rtol=1e-5)
        text = m.get("/metrics").text
    assert f'forecast_live_scored_total{{horizon_step="1",model="{SENSOR}"}}' in text
    assert f'forecast_observations_total{{model="{SENSOR}"}} {3.0 * n + 5}' in text


def test_multi_stream_business_days(models_dir: Path, serve) -> None:
    server = serve(accuracy_sample_fraction=0.0)
    url = f"/v1/models/{STOCK}/observations"
    with httpx.Client(base_url=server.url) as c:
        first = [{"stream_id": f"b{k}", "observations": [{"ts": "2018-12-07", "value": 100.0 + k}]}
                 for k in range(3)]  # fmt: skip
        c.post(url, json={"streams": first})
        nxt = [
            {"stream_id": "b0", "observations": [{"ts": "2018-12-10", "value": 101.0}]},  # Monday
            {"stream_id": "b1", "observations": [{"ts": "2018-12-11", "value": 101.0}]},  # Tue
        ]
        got = c.post(url, json={"streams": nxt}).json()["results"]
    assert [g["filled"] for g in got] == [0, 1]


def test_multi_stream_forecast_detail(models_dir: Path, serve) -> None:
    seconds, values = held_out(models_dir, SENSOR, 3)
    server = serve(accuracy_sample_fraction=0.0)
    with httpx.Client(base_url=server.url) as c:
        first = [
            {"stream_id": f"d{k}", "observations": [obs_body(seconds[0], values[0], 0)]}
            for k in range(3)
        ]
        full = c.post(MANY, json={"streams": first}).json()["results"]
        nxt = [
            {"stream_id": "d0", "observations": [obs_body(seconds[1], values[1], 1)]},  # block
            {"stream_id": "d1", "observations": [obs_body(seconds[0], values[0], 0)]},  # retry
        ]
        median = c.post(MANY, json={"streams": nxt, "forecast": "median"}).json()["results"]
        assert set(median[0]["forecast"]) == {"ts", "median"}
        assert set(median[1]["forecast"]) == {"ts", "median"}
        assert median[1]["forecast"]["median"] == [row[1] for row in full[1]["forecast"]["values"]]
        status = c.get(f"/v1/models/{SENSOR}/streams/d0").json()
        assert median[0]["forecast"]["median"] == [r[1] for r in status["forecast"]["values"]]
        ack = [{"stream_id": "d2", "observations": [obs_body(seconds[1], values[1], 1)]}]
        none = c.post(MANY, json={"streams": ack, "forecast": "none"}).json()["results"]
        assert "forecast" not in none[0] and none[0]["seq"] == 1
        bad = c.post(MANY, json={"streams": ack, "forecast": "all"})
        assert bad.status_code == 422 and "forecast" in bad.json()["error"]["message"]


def test_multi_stream_request_where_every_entry_conflicts(models_dir: Path, serve) -> None:
    # Regression: the vectorised lane once waited forever on an empty block.
    seconds, values = held_out(models_dir, SENSOR, 3)
    server = serve(accuracy_sample_fraction=0.0)
    with httpx.Client(base_url=server.url, timeout=10) as c:
        streams = [
            {"stream_id": f"x{k}", "observations": [obs_body(seconds[1], values[1], 1)]}
            for k in range(5)
        ]
        assert c.post(MANY, json={"streams": streams}).status_code == 200
        back = [{"stream_id": f"x{k}", "observations": [obs_body(seconds[0], values[0], 0)]}
                for k in range(5)]  # fmt: skip
        got = c.post(MANY, json={"streams": back}).json()["results"]
        assert [g["status"] for g in got] == [409] * 5
        again = c.post(MANY, json={"streams": streams}).json()["results"]
        assert all(g["duplicate"] for g in again)
        # The streams are not left locked.
        nxt = [{"stream_id": f"x{k}", "observations": [obs_body(seconds[2], values[2], 2)]}
               for k in range(5)]  # fmt: skip
        assert all(g["seq"] == 2 for g in c.post(MANY, json={"streams": nxt}).json()["results"])


def test_sampled_streams_keep_horizon_accuracy_in_multi_requests(models_dir: Path, serve) -> None:
    seconds, values = held_out(models_dir, SENSOR, 8)
    server = serve(accuracy_sample_fraction=0.5)
    n = 40
    with httpx.Client(base_url=server.url) as c:
        for step in range(8):
            streams = [
                {
                    "stream_id": f"a{k}",
                    "observations": [obs_body(seconds[step], values[step], step)],
                }
                for k in range(n)
            ]
            results = c.post(MANY, json={"streams": streams}).json()["results"]
            assert all(r["seq"] == step for r in results)
        text = c.get("/metrics").text
    samples = dict(
        ln.rsplit(" ", 1) for ln in text.splitlines() if ln.startswith("forecast_live_scored")
    )
    # Every stream, lane or not, is scored one step ahead after its first observation.
    assert (
        float(samples[f'forecast_live_scored_total{{horizon_step="1",model="{SENSOR}"}}']) == 7 * n
    )
    # Only sampled streams (about half) score later steps: some, but fewer than all.
    step2 = float(samples[f'forecast_live_scored_total{{horizon_step="2",model="{SENSOR}"}}'])
    assert 0 < step2 < 6 * n


def test_block_answers_with_several_timestamps_in_each_detail(models_dir: Path, serve) -> None:
    """One vectorised block whose streams sit at different ticks: each answer carries its
    own ts, seq and forecast timestamps, whatever the detail asked for."""
    seconds, values = held_out(models_dir, SENSOR, 6)
    server = serve(accuracy_sample_fraction=0.0)
    with httpx.Client(base_url=server.url) as c:
        for k in range(6):  # streams d0..d5 at ticks 0..(k % 3)
            for step in range(k % 3 + 1):
                body = {"observations": [obs_body(seconds[step], values[step], step)]}
                r = c.post(f"/v1/models/{SENSOR}/streams/t{k}/observations", json=body)
                assert r.status_code == 200, r.text
                assert (r.json()["seq"], r.json()["duplicate"]) == (step, False)
        for detail in ("full", "median", "none"):
            streams = []
            for k in range(6):
                status = c.get(f"/v1/models/{SENSOR}/streams/t{k}").json()
                step = status["seq"] + 1
                streams.append(
                    {
                        "stream_id": f"t{k}",
                        "observations": [obs_body(seconds[step], values[step], step)],
                    }
                )
            got = c.post(MANY, json={"streams": streams, "forecast": detail}).json()["results"]
            for k, result in enumerate(got):
                status = c.get(f"/v1/models/{SENSOR}/streams/t{k}").json()
                assert result["stream_id"] == f"t{k}" and result["seq"] == status["seq"]
                assert result["ts"] == status["ts"] and result["duplicate"] is False
                if detail == "none":
                    assert "forecast" not in result
                elif detail == "median":
                    assert result["forecast"] == {
                        "ts": status["forecast"]["ts"],
                        "median": [row[1] for row in status["forecast"]["values"]],
                    }
                else:
                    assert result["forecast"] == status["forecast"]


def test_vectorised_lane_scores_each_stream_one_step_ahead(models_dir: Path, serve) -> None:
    """Streams stepped together in the vectorised lane are each scored against the
    median of their own one-step forecast, worked out here with ORT on the graph."""
    seconds, values = held_out(models_dir, SENSOR, 2)
    server = serve(accuracy_sample_fraction=0.0)
    m = manifest(models_dir, SENSOR)
    q, ti = median_index(m), m["target_index"]
    shifts = [0.0, 50.0, -80.0]
    want = 0.0
    with httpx.Client(base_url=server.url) as c:
        for k, shift in enumerate(shifts):
            assert _single(c, f"v{k}", [obs_body(seconds[0], values[0] + shift, 0)])["seq"] == 0
            x = design(m, seconds[:1], values[:1] + shift)
            want += abs(
                values[1][ti] + shift - float(offline_forecast(models_dir, SENSOR, x)[0, q])
            )
        before = _scored(c)
        streams = [
            {"stream_id": f"v{k}", "observations": [obs_body(seconds[1], values[1] + s, 1)]}
            for k, s in enumerate(shifts)
        ]
        results = c.post(MANY, json={"streams": streams}).json()["results"]
        assert [r["seq"] for r in results] == [1, 1, 1]
        after = _scored(c)
    assert after[0] == before[0] + 3
    np.testing.assert_allclose(after[1] - before[1], want, rtol=1e-4)


def _scored(c: httpx.Client) -> tuple[float, float]:
    """(streams scored, their summed absolute error) at horizon step 1."""
    samples = metric_samples(str(c.base_url).rstrip("/"))
    label = f'{{horizon_step="1",model="{SENSOR}"}}'
    return samples[f"forecast_live_scored_total{label}"], samples[
        f"forecast_live_abs_error_total{label}"
    ]


def test_a_stream_entry_refused_by_its_stream_is_located_in_the_request(
    models_dir: Path, client: httpx.Client
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 3)
    assert _single(client, "late", [obs_body(seconds[2], values[2])])["status"] == 200
    late = {"stream_id": "late", "observations": [obs_body(seconds[0], values[0])]}
    body = {
        "streams": [{"stream_id": "ok", "observations": [obs_body(seconds[0], values[0])]}, late]
    }
    result = client.post(MANY, json=body).json()["results"][1]
    assert result["status"] == 409
    assert result["error"]["message"].startswith("streams[1].observations[0]: ts "), result
