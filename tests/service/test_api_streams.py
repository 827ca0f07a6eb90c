"""Main stream flows through a real uvicorn server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from svc_helpers import (
    SENSOR,
    STOCK,
    LiveServer,
    RuntimeGate,
    design,
    held_out,
    iso,
    manifest,
    median_index,
    metric_samples,
    obs_body,
    offline_forecast,
    queue_depth,
    wait_until,
)

STREAM = "/v1/models/{model}/streams/{sid}/observations"


def post_obs(client: httpx.Client, sid: str, obs: list[dict], model: str = SENSOR, **extra):
    return client.post(STREAM.format(model=model, sid=sid), json={"observations": obs, **extra})


@pytest.mark.parametrize("name", [SENSOR, STOCK])
def test_streaming_one_at_a_time_matches_offline_sequence(
    models_dir: Path, client: httpx.Client, name: str
) -> None:
    seconds, values = held_out(models_dir, name, 120)
    m = manifest(models_dir, name)
    x = design(m, seconds, values)
    checkpoints = {0, 1, 17, 59, len(seconds) - 1}
    for i in range(len(seconds)):
        r = post_obs(client, "held-out", [obs_body(seconds[i], values[i], seq=i)], model=name)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["seq"] == i and body["filled"] == 0 and body["duplicate"] is False
        if i in checkpoints:
            expected = offline_forecast(models_dir, name, x[: i + 1])
            got = np.array(body["forecast"]["values"], dtype=np.float32)
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert len(body["forecast"]["ts"]) == m["horizon"]
    status = client.get(f"/v1/models/{name}/streams/held-out").json()
    assert status["count"] == len(seconds) and status["seq"] == len(seconds) - 1


def test_history_primes_in_one_call_and_equals_stepping(
    models_dir: Path, server: LiveServer, client: httpx.Client
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 60)
    history = [obs_body(seconds[i], values[i], seq=i) for i in range(50)]
    calls_before = _inference_calls(client)
    r = post_obs(client, "primed", history)
    assert r.status_code == 200, r.text
    assert _inference_calls(client) == calls_before + 1  # one sequence call, T = 50
    for i in range(50):
        post_obs(client, "stepped", [history[i]])
    for i in range(50, 60):
        a = post_obs(client, "primed", [obs_body(seconds[i], values[i], seq=i)]).json()
        b = post_obs(client, "stepped", [obs_body(seconds[i], values[i], seq=i)]).json()
        np.testing.assert_allclose(a["forecast"]["values"], b["forecast"]["values"], rtol=1e-4)
    stateless = client.post(
        f"/v1/models/{SENSOR}/forecast",
        json={"observations": [obs_body(seconds[i], values[i]) for i in range(60)]},
    ).json()
    np.testing.assert_allclose(stateless["forecast"]["values"], a["forecast"]["values"], rtol=1e-4)
    # The stateless call touched no stream.
    assert client.get(f"/v1/models/{SENSOR}/streams/primed").json()["count"] == 60


def _inference_calls(client: httpx.Client) -> float:
    text = client.get("/metrics").text
    for line in text.splitlines():
        if line.startswith(f'forecast_inference_duration_seconds_count{{model="{SENSOR}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_retry_is_idempotent_and_backwards_is_409(models_dir: Path, client: httpx.Client) -> None:
    seconds, values = held_out(models_dir, SENSOR, 5)
    first = post_obs(client, "r", [obs_body(seconds[0], values[0], seq=10)]).json()
    second = post_obs(client, "r", [obs_body(seconds[1], values[1], seq=11)]).json()
    again = post_obs(client, "r", [obs_body(seconds[1], values[1], seq=11)])
    assert again.status_code == 200
    assert again.json()["forecast"] == second["forecast"] and again.json()["duplicate"] is True
    status = client.get(f"/v1/models/{SENSOR}/streams/r").json()
    assert status["count"] == 2 and status["seq"] == 11
    back = post_obs(client, "r", [obs_body(seconds[0], values[0], seq=10)])
    assert back.status_code == 409 and back.json()["error"]["code"] == "out_of_order"
    assert "seq 10" in back.json()["error"]["message"]
    # Same seq is only ever the retry; a new seq with an old timestamp is refused too.
    stale_ts = post_obs(client, "r", [obs_body(seconds[0], values[0], seq=12)])
    assert stale_ts.status_code == 409
    # A resent batch skips what was applied and applies the rest.
    batch = [obs_body(seconds[i], values[i], seq=10 + i) for i in range(1, 4)]
    r = post_obs(client, "r", batch).json()
    assert r["seq"] == 13
    assert client.get(f"/v1/models/{SENSOR}/streams/r").json()["count"] == 4
    assert first["forecast"] != r["forecast"]
    # Without seq, the timestamp is the identity.
    post_obs(client, "t", [obs_body(seconds[0], values[0])])
    dup = post_obs(client, "t", [obs_body(seconds[0], values[0])]).json()
    assert dup["duplicate"] is True
    assert client.get(f"/v1/models/{SENSOR}/streams/t").json()["count"] == 1


def test_concurrent_requests_leave_streams_as_sequential(
    models_dir: Path, serve, tmp_path: Path
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 10)
    n_streams, per_stream = 100, 10
    server = serve(max_batch_rows=64)
    reference = serve()

    async def hammer() -> None:
        limits = httpx.Limits(max_connections=64)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as c:
            # Each stream's observations are sent in order by its own task; the tasks of
            # all 100 streams interleave freely (1,000 requests, 64 connections).
            async def one_stream(s: int) -> None:
                for i in range(per_stream):
                    v = values[i] + s
                    r = await c.post(
                        STREAM.format(model=SENSOR, sid=f"s{s}"),
                        json={"observations": [obs_body(seconds[i], v, seq=i)]},
                    )
                    assert r.status_code == 200, r.text

            await asyncio.gather(*(one_stream(s) for s in range(n_streams)))

    asyncio.run(hammer())
    with httpx.Client(base_url=reference.url) as ref, httpx.Client(base_url=server.url) as c:
        for s in random.Random(0).sample(range(n_streams), 20):
            for i in range(per_stream):
                post_obs(ref, f"s{s}", [obs_body(seconds[i], values[i] + s, seq=i)])
            want = ref.get(f"/v1/models/{SENSOR}/streams/s{s}").json()
            got = c.get(f"/v1/models/{SENSOR}/streams/s{s}").json()
            assert got["count"] == want["count"] == per_stream
            np.testing.assert_allclose(
                got["forecast"]["values"], want["forecast"]["values"], rtol=1e-5
            )


def _batch_rows(client: httpx.Client) -> tuple[float, float]:
    """(ORT calls, rows) so far, from the forecast_batch_rows histogram."""
    samples = metric_samples(str(client.base_url).rstrip("/"))
    label = f'{{model="{SENSOR}"}}'
    return samples[f"forecast_batch_rows_count{label}"], samples[f"forecast_batch_rows_sum{label}"]


def test_queued_requests_of_many_streams_share_one_ort_call(models_dir: Path, serve) -> None:
    """While one ORT call is held (an injected gate), ten one-observation requests of ten
    streams queue up; released, they run as ONE call of ten rows."""
    seconds, values = held_out(models_dir, SENSOR, 1)
    server = serve(inline_max_rows_steps=0, max_batch_rows=64)
    model = server.service.models[SENSOR]
    gate = RuntimeGate(model.runtime)
    with httpx.Client(base_url=server.url) as c:
        calls0, rows0 = _batch_rows(c)

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            body = {"observations": [obs_body(seconds[0], values[0], seq=0)]}
            first = asyncio.ensure_future(
                c.post(STREAM.format(model=SENSOR, sid="held"), json=body)
            )
            await asyncio.to_thread(gate.entered.wait, 30)
            rest = [
                asyncio.ensure_future(c.post(STREAM.format(model=SENSOR, sid=f"b{k}"), json=body))
                for k in range(10)
            ]
            await asyncio.to_thread(wait_until, lambda: queue_depth(server) == 10, "10 queued")
            gate.restore()
            return await asyncio.gather(first, *rest)

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [200] * 11
    with httpx.Client(base_url=server.url) as c:
        assert _batch_rows(c) == (calls0 + 2, rows0 + 11)  # one call of 1 row, one of 10


def test_concurrent_requests_on_one_stream_apply_in_order_exactly_once(
    models_dir: Path, serve: Callable[..., LiveServer]
) -> None:
    # Arrival order is up to the client and the OS: any seq may come first, so any
    # gap (up to 29 periods) must be fillable for {200, 409} to hold in every order.
    server = serve(max_gap_steps=64)
    seconds, values = held_out(models_dir, SENSOR, 30)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
            tasks = []
            for i in range(30):
                body = {"observations": [obs_body(seconds[i], values[i], seq=i)]}
                tasks.append(c.post(STREAM.format(model=SENSOR, sid="one"), json=body))
                tasks.append(c.post(STREAM.format(model=SENSOR, sid="one"), json=body))
            return await asyncio.gather(*tasks)

    responses = asyncio.run(burst())
    codes = {r.status_code for r in responses}
    assert codes <= {200, 409}
    with httpx.Client(base_url=server.url) as c:
        status = c.get(f"/v1/models/{SENSOR}/streams/one").json()
    # Whatever order they arrived in, no seq is applied twice, a retry never steps,
    # and the stream counts exactly the observations that were applied.
    applied = [
        r.json()["seq"] for r in responses if r.status_code == 200 and not r.json()["duplicate"]
    ]
    assert len(applied) == len(set(applied)) > 0
    assert status["count"] == len(applied)
    assert status["seq"] == max(applied)


def test_gaps_and_missing_values_are_filled_and_reported(
    models_dir: Path, client: httpx.Client
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 10)
    post_obs(client, "g", [obs_body(seconds[0], values[0], seq=0)])
    # Two missing periods, then an observation whose temperature is missing.
    skip = post_obs(client, "g", [obs_body(seconds[3], values[3], seq=3)]).json()
    assert skip["filled"] == 2
    missing = post_obs(
        client, "g", [{"ts": iso(seconds[4]), "seq": 4, "values": [values[4][0], None]}]
    )
    assert missing.status_code == 200 and missing.json()["filled"] == 1
    # The fill follows the artifact rule (docs/artifact.md), worked out here on the graph
    # itself: each missing period's target is the median of the one-step forecast of
    # the steps so far, every other input its last observed value; a null value the same.
    m = manifest(models_dir, SENSOR)
    q, ti, period = median_index(m), m["target_index"], m["frequency_seconds"]
    ts = [seconds[0], seconds[0] + period, seconds[0] + 2 * period, seconds[3], seconds[4]]
    rows = [list(values[0])]
    for _ in range(2):
        one_step = offline_forecast(
            models_dir, SENSOR, design(m, np.array(ts[: len(rows)]), np.array(rows))
        )
        rows.append([float(one_step[0, q]), values[0][1]])
    rows.append(list(values[3]))
    want = offline_forecast(models_dir, SENSOR, design(m, np.array(ts[:4]), np.array(rows)))
    np.testing.assert_allclose(skip["forecast"]["values"], want, rtol=1e-4, atol=1e-4)
    rows.append([values[4][0], values[3][1]])  # the temperature carried forward
    want = offline_forecast(models_dir, SENSOR, design(m, np.array(ts), np.array(rows)))
    np.testing.assert_allclose(missing.json()["forecast"]["values"], want, rtol=1e-4, atol=1e-4)
    assert ti == 0  # the rows above put the target first
    # Past the limit (4 in the test settings): an error, state unchanged...
    before = client.get(f"/v1/models/{SENSOR}/streams/g").json()
    far = seconds[4] + 1800 * 10
    r = post_obs(client, "g", [obs_body(far, values[5], seq=5)])
    assert r.status_code == 422 and r.json()["error"]["code"] == "gap_too_large"
    assert client.get(f"/v1/models/{SENSOR}/streams/g").json() == before
    # ...unless the client asks for a reset, which restarts the stream there.
    r = post_obs(client, "g", [obs_body(far, values[5], seq=5)], reset=True)
    assert r.status_code == 200, r.text
    assert client.get(f"/v1/models/{SENSOR}/streams/g").json()["count"] == 1


def test_first_observation_must_be_complete(models_dir: Path, client: httpx.Client) -> None:
    seconds, _ = held_out(models_dir, SENSOR, 1)
    r = post_obs(client, "n", [{"ts": iso(seconds[0]), "values": [None, 1.0]}])
    assert r.status_code == 422 and "observations[0].values" in r.json()["error"]["message"]
    assert client.get(f"/v1/models/{SENSOR}/streams/n").status_code == 404


def test_stock_business_days(models_dir: Path, client: httpx.Client) -> None:
    # Friday then Monday: no gap. Friday then Tuesday: one filled business day.
    fri, mon, tue = "2018-12-07", "2018-12-10", "2018-12-11"
    base = STREAM.format(model=STOCK, sid="aapl")
    client.post(base, json={"observations": [{"ts": fri, "value": 2600.0}]})
    r = client.post(base, json={"observations": [{"ts": mon, "value": 2610.0}]}).json()
    assert r["filled"] == 0
    assert r["forecast"]["ts"][:2] == ["2018-12-11T00:00:00Z", "2018-12-12T00:00:00Z"]
    other = STREAM.format(model=STOCK, sid="ibm")
    client.post(other, json={"observations": [{"ts": fri, "value": 2600.0}]})
    r = client.post(other, json={"observations": [{"ts": tue, "value": 2610.0}]}).json()
    assert r["filled"] == 1


def test_a_business_day_model_refuses_weekend_dates_and_changes_nothing(
    serve: Callable[..., LiveServer],
) -> None:
    # A Saturday would count as Monday, and the real Monday then as a second period;
    # Monday's close at a Berlin midnight is Sunday 23:00 in UTC. With no accuracy
    # sampling the multi-stream endpoint takes its vectorised lane for the next period.
    server = serve(accuracy_sample_fraction=0.0)
    status = f"/v1/models/{STOCK}/streams/berlin"
    with httpx.Client(base_url=server.url, timeout=30) as client:
        first = client.post(
            f"{status}/observations", json={"observations": [{"ts": "2018-12-07", "value": 2600.0}]}
        )
        assert first.status_code == 200, first.text
        before = client.get(status).json()
        for ts, day in (("2018-12-08", "Saturday"), ("2018-12-10T00:00:00+01:00", "Sunday")):
            one = {"observations": [{"ts": ts, "value": 2610.0}]}
            r = client.post(f"{status}/observations", json=one)
            assert r.status_code == 422, r.text
            message = r.json()["error"]["message"]
            assert message.startswith("observations[0].ts: ") and f"is a {day} (UTC)" in message
            many = {"streams": [{"stream_id": "berlin", **one}]}
            result = client.post(f"/v1/models/{STOCK}/observations", json=many).json()
            assert result["results"][0]["status"] == 422, result
            assert f"is a {day} (UTC)" in result["results"][0]["error"]["message"]
        assert client.get(status).json() == before
        monday = {"observations": [{"ts": "2018-12-10", "value": 2610.0}]}
        r = client.post(f"{status}/observations", json=monday).json()
        assert r["filled"] == 0 and r["forecast"]["ts"][0] == "2018-12-11T00:00:00Z"


def test_get_and_delete_stream(models_dir: Path, client: httpx.Client) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)
    post_obs(client, "d", [obs_body(seconds[0], values[0], seq=7)])
    status = client.get(f"/v1/models/{SENSOR}/streams/d").json()
    assert status["seq"] == 7 and status["ts"] == iso(seconds[0]) and status["count"] == 1
    assert len(status["forecast"]["values"]) == manifest(models_dir, SENSOR)["horizon"]
    assert client.delete(f"/v1/models/{SENSOR}/streams/d").status_code == 200
    assert client.get(f"/v1/models/{SENSOR}/streams/d").status_code == 404
    assert client.delete(f"/v1/models/{SENSOR}/streams/d").status_code == 404
    # A forgotten stream starts over.
    r = post_obs(client, "d", [obs_body(seconds[0], values[0], seq=7)]).json()
    assert r["duplicate"] is False


def test_multi_stream_request_isolates_bad_streams(models_dir: Path, client: httpx.Client) -> None:
    seconds, values = held_out(models_dir, SENSOR, 3)
    good = {"stream_id": "m1", "observations": [obs_body(seconds[0], values[0], seq=0)]}
    bad_count = {"stream_id": "m2", "observations": [{"ts": iso(seconds[0]), "values": [1.0]}]}
    no_id = {"observations": [obs_body(seconds[0], values[0])]}
    good2 = {"stream_id": "m3", "observations": [obs_body(seconds[0], values[0], seq=0)]}
    r = client.post(
        f"/v1/models/{SENSOR}/observations", json={"streams": [good, bad_count, no_id, good2]}
    )
    assert r.status_code == 200
    results = r.json()["results"]
    assert [x.get("stream_id") for x in results] == ["m1", "m2", None, "m3"]
    assert "forecast" in results[0] and "forecast" in results[3]
    assert results[1]["error"]["code"] == "invalid_input" and results[1]["status"] == 422
    assert "streams[1].observations[0].values" in results[1]["error"]["message"]
    assert "streams[2].stream_id" in results[2]["error"]["message"]
    assert client.get(f"/v1/models/{SENSOR}/streams/m2").status_code == 404
    # Out of order for one stream only; the other still applies.
    again = client.post(
        f"/v1/models/{SENSOR}/observations",
        json={
            "streams": [
                {"stream_id": "m1", "observations": [obs_body(seconds[0], values[0], seq=-0 + 0)]},
                {"stream_id": "m3", "observations": [obs_body(seconds[1], values[1], seq=1)]},
            ]
        },
    ).json()["results"]
    assert again[0]["duplicate"] is True and again[1]["seq"] == 1
    # One stream named twice: the second entry gets its own error.
    twice = client.post(
        f"/v1/models/{SENSOR}/observations",
        json={"streams": [good2, good2]},
    ).json()["results"]
    assert "already appears" in twice[1]["error"]["message"]


def test_multi_stream_many_streams_match_single_requests(
    models_dir: Path, client: httpx.Client
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 3)
    streams = [
        {"stream_id": f"bulk{k}", "observations": [obs_body(seconds[0], values[0] + k, seq=0)]}
        for k in range(300)
    ]
    r = client.post(f"/v1/models/{SENSOR}/observations", json={"streams": streams}).json()
    for k in (0, 150, 299):
        single = post_obs(client, f"single{k}", [obs_body(seconds[0], values[0] + k, seq=0)]).json()
        np.testing.assert_allclose(
            r["results"][k]["forecast"]["values"], single["forecast"]["values"], rtol=1e-5
        )
