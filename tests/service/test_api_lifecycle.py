"""Start/stop behaviour: snapshot continuity, bounds, broken artifacts, load, metrics."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import numpy as np
from svc_helpers import (
    SENSOR,
    STOCK,
    RuntimeGate,
    design,
    held_out,
    manifest,
    median_index,
    obs_body,
    offline_forecast,
    queue_depth,
    wait_until,
)

STREAM = "/v1/models/{model}/streams/{sid}/observations"


def _post(c: httpx.Client, sid: str, obs: list[dict], model: str = SENSOR) -> httpx.Response:
    return c.post(STREAM.format(model=model, sid=sid), json={"observations": obs})


def test_restart_continues_every_stream_exactly(models_dir: Path, serve, tmp_path: Path) -> None:
    seconds, values = held_out(models_dir, SENSOR, 40)
    first = serve()
    with httpx.Client(base_url=first.url) as c:
        for i in range(25):
            for sid in ("a", "b"):
                r = _post(c, sid, [obs_body(seconds[i], values[i] * (sid == "a" or 1.1), i)])
                assert r.status_code == 200, r.text
                assert (r.json()["seq"], r.json()["duplicate"]) == (i, False)
        last_a = _post(c, "a", [obs_body(seconds[24], values[24], 24)]).json()
        _post(c, "stock", [{"ts": "2018-12-07", "value": 2600.0, "seq": 3}], model=STOCK)
    first.stop()  # graceful: the snapshot is written
    assert (tmp_path / "snapshot.npz").exists()

    second = serve()
    reference = serve(snapshot_path="")
    with httpx.Client(base_url=second.url) as c, httpx.Client(base_url=reference.url) as ref:
        # A retry across the restart is still recognised, with the same answer.
        again = _post(c, "a", [obs_body(seconds[24], values[24], 24)]).json()
        assert again["duplicate"] is True and again["forecast"] == last_a["forecast"]
        assert c.get(f"/v1/models/{STOCK}/streams/stock").json()["seq"] == 3
        for i in range(40):
            got = _post(ref, "a", [obs_body(seconds[i], values[i], i)]).json()
        for i in range(25, 40):
            cont = _post(c, "a", [obs_body(seconds[i], values[i], i)]).json()
        np.testing.assert_allclose(cont["forecast"]["values"], got["forecast"]["values"], rtol=1e-5)
        assert c.get(f"/v1/models/{SENSOR}/streams/a").json()["count"] == 40
        assert c.get(f"/v1/models/{SENSOR}/streams/b").json()["count"] == 25


def test_lru_eviction_and_idle_expiry(models_dir: Path, serve) -> None:
    seconds, values = held_out(models_dir, SENSOR, 3)
    server = serve(max_streams=4, stream_ttl_seconds=60)
    with httpx.Client(base_url=server.url) as c:
        for k in range(4):
            _post(c, f"e{k}", [obs_body(seconds[0], values[0], 0)])
        _post(c, "e0", [obs_body(seconds[1], values[1], 1)])  # e0 is now the freshest
        _post(c, "e4", [obs_body(seconds[0], values[0], 0)])  # full: evicts e1
        assert c.get(f"/v1/models/{SENSOR}/streams/e1").status_code == 404
        for sid in ("e0", "e2", "e3", "e4"):
            assert c.get(f"/v1/models/{SENSOR}/streams/{sid}").status_code == 200
        text = c.get("/metrics").text
        assert f'forecast_stream_evictions_total{{model="{SENSOR}"}} 1.0' in text
        assert f'forecast_live_streams{{model="{SENSOR}"}} 4.0' in text

    quick = serve(stream_ttl_seconds=0.3, expiry_interval_seconds=0.05)
    with httpx.Client(base_url=quick.url) as c:
        _post(c, "idle", [obs_body(seconds[0], values[0], 0)])
        deadline = time.monotonic() + 10
        while c.get(f"/v1/models/{SENSOR}/streams/idle").status_code == 200:
            assert time.monotonic() < deadline, "idle stream never expired"
            time.sleep(0.05)
        text = c.get("/metrics").text
        assert f'forecast_stream_expirations_total{{model="{SENSOR}"}} 1.0' in text


def test_broken_artifacts_are_reported_and_the_rest_served(own_models: Path, serve) -> None:
    graph = own_models / STOCK / "1" / "model.onnx"
    graph.write_bytes(graph.read_bytes() + b"\0")
    bad = own_models / "no-fields" / "1"
    bad.mkdir(parents=True)
    (bad / "manifest.json").write_text(json.dumps({"name": "no-fields", "version": "1"}))
    server = serve(models=own_models)
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/readyz").status_code == 200
        models = {m["name"]: m for m in c.get("/v1/models").json()["models"]}
        assert models[SENSOR]["status"] == "serving"
        assert models[SENSOR]["provider"] == "CPUExecutionProvider"
        assert models[STOCK]["status"] == "error" and "sha256" in models[STOCK]["error"]
        assert models["no-fields"]["status"] == "error"
        assert "missing fields" in models["no-fields"]["error"]
        r = _post(c, "s", [{"ts": "2018-12-07", "value": 1.0}], model=STOCK)
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_unavailable"
        assert "Retry-After" in r.headers
        one = c.get(f"/v1/models/{SENSOR}").json()
        assert one["horizon"] >= 1 and one["versions"] == [{"version": "1", "status": "serving"}]
        assert c.get(f"/v1/models/{STOCK}").json()["status"] == "error"


def test_not_ready_without_models(tmp_path: Path, serve) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    server = serve(models=empty)
    with httpx.Client(base_url=server.url) as c:
        assert c.get("/healthz").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503 and "Retry-After" in r.headers


def test_full_queue_is_503_and_changes_nothing(models_dir: Path, serve) -> None:
    """One call held in ORT (an injected gate), two rows queued behind it (the bound):
    the next request is refused at once, and the held ones then complete."""
    seconds, values = held_out(models_dir, SENSOR, 2)
    server = serve(queue_rows=2, max_batch_rows=1, inline_max_rows_steps=0)
    model = server.service.models[SENSOR]
    gate = RuntimeGate(model.runtime)
    body = {"observations": [obs_body(seconds[0], values[0], 0)]}

    async def flood() -> tuple[list[httpx.Response], httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:

            def post(k: int):
                return c.post(STREAM.format(model=SENSOR, sid=f"q{k}"), json=body)

            held = [asyncio.ensure_future(post(0))]
            await asyncio.to_thread(gate.entered.wait, 30)
            held += [asyncio.ensure_future(post(k)) for k in (1, 2)]
            await asyncio.to_thread(wait_until, lambda: queue_depth(server) == 2, "2 rows queued")
            refused = await post(3)
            gate.restore()
            return await asyncio.gather(*held), refused

    held, full = asyncio.run(flood())
    assert [r.status_code for r in held] == [200, 200, 200]
    assert full.status_code == 503 and full.json()["error"]["code"] == "queue_full"
    assert full.headers["Retry-After"] == "1"
    with httpx.Client(base_url=server.url) as c:
        for k in range(3):
            assert c.get(f"/v1/models/{SENSOR}/streams/q{k}").json()["count"] == 1
        assert c.get(f"/v1/models/{SENSOR}/streams/q3").status_code == 404
        text = c.get("/metrics").text
    assert f'forecast_rejected_total{{model="{SENSOR}",reason="queue_full"}} 1.0' in text


def test_every_slot_busy_is_503_streams_full(models_dir: Path, serve) -> None:
    """max_streams=1 and that one stream has work in flight (the test holds its stream
    lock, as a request in flight does): a new stream cannot evict it and gets 503
    streams_full, changing nothing; once free, the new stream evicts it."""
    seconds, values = held_out(models_dir, SENSOR, 2)
    server = serve(max_streams=1)
    model = server.service.models[SENSOR]
    with httpx.Client(base_url=server.url) as c:
        assert _post(c, "busy", [obs_body(seconds[0], values[0], 0)]).status_code == 200
        assert server.call(lambda: model.locks.enqueue("busy")) is None  # taken at once
        refused = _post(c, "new", [obs_body(seconds[0], values[0], 0)])
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "streams_full"
        assert refused.headers["Retry-After"] == "1"
        assert c.get(f"/v1/models/{SENSOR}/streams/busy").json()["count"] == 1
        assert c.get(f"/v1/models/{SENSOR}/streams/new").status_code == 404
        text = c.get("/metrics").text
        server.call(lambda: model.locks.release("busy"))
        assert _post(c, "new", [obs_body(seconds[0], values[0], 0)]).status_code == 200
        assert c.get(f"/v1/models/{SENSOR}/streams/busy").status_code == 404
    assert f'forecast_rejected_total{{model="{SENSOR}",reason="streams_full"}} 1.0' in text


def test_inference_error_reaches_its_request_only(models_dir: Path, serve) -> None:
    seconds, values = held_out(models_dir, SENSOR, 3)
    server = serve()
    runtime = server.service.models[SENSOR].runtime
    real_run = runtime.run

    def poisoned(x, state):  # fault injection: ORT fails on a batch holding 666
        if (x[:, :, 1] == 666).any():
            raise RuntimeError("injected failure")
        return real_run(x, state)

    runtime.run = poisoned
    with httpx.Client(base_url=server.url) as c:
        _post(c, "p", [obs_body(seconds[0], values[0], 0)])
        before = c.get(f"/v1/models/{SENSOR}/streams/p").json()
        r = _post(c, "p", [obs_body(seconds[1], [values[1][0], 666.0], 1)])
        assert r.status_code == 500 and r.json()["error"]["code"] == "inference_error"
        assert c.get(f"/v1/models/{SENSOR}/streams/p").json() == before
        ok = _post(c, "p", [obs_body(seconds[1], values[1], 1)])
        assert ok.status_code == 200 and ok.json()["seq"] == 1


def test_metrics_present_and_moving(models_dir: Path, serve) -> None:
    seconds, values = held_out(models_dir, SENSOR, 12)
    server = serve()
    with httpx.Client(base_url=server.url) as c:
        for i in range(10):
            _post(c, "acc", [obs_body(seconds[i], values[i], i)])
        _post(c, "acc", [obs_body(seconds[9], values[9], 9)])  # a duplicate
        _post(c, "acc", [obs_body(seconds[11], values[11], 11)])  # one gap filled
        text = c.get("/metrics").text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    m = f'model="{SENSOR}"'
    assert samples[f"forecast_observations_total{{{m}}}"] == 11
    assert samples[f"forecast_duplicate_observations_total{{{m}}}"] == 1
    assert samples[f"forecast_gap_filled_total{{{m}}}"] == 1
    assert samples[f"forecast_live_streams{{{m}}}"] == 1
    assert samples[f"forecast_queue_depth{{{m}}}"] == 0
    assert samples[f"forecast_inference_duration_seconds_count{{{m}}}"] >= 11
    assert samples[f"forecast_batch_rows_count{{{m}}}"] >= 11
    assert samples[f'forecast_model_info{{{m},provider="CPUExecutionProvider",version="1"}}'] == 1
    # Every stream scored one step ahead (9 steps had a forecast for them).
    assert samples[f'forecast_live_scored_total{{horizon_step="1",{m}}}'] == 10
    # ...and the error is the one worked out here: each truth against the median of the
    # one-step forecast before it (ORT on the graph), the filled period 10 not scored.
    spec = manifest(models_dir, SENSOR)
    q, ti = median_index(spec), spec["target_index"]
    fed_ts, fed = list(seconds[:10]), [list(values[i]) for i in range(10)]
    want = 0.0
    for i in range(1, 10):
        before = offline_forecast(models_dir, SENSOR, design(spec, seconds[:i], values[:i]))
        want += abs(values[i][ti] - float(before[0, q]))
    last = offline_forecast(models_dir, SENSOR, design(spec, np.array(fed_ts), np.array(fed)))
    fed_ts.append(seconds[10])
    fed.append([float(last[0, q]), values[9][1]])  # the fill of period 10
    before = offline_forecast(models_dir, SENSOR, design(spec, np.array(fed_ts), np.array(fed)))
    want += abs(values[11][ti] - float(before[0, q]))
    got = samples[f'forecast_live_abs_error_total{{horizon_step="1",{m}}}']
    np.testing.assert_allclose(got, want, rtol=1e-4)
    # Sampled (fraction 1.0 here): later horizon steps are scored too.
    assert samples[f'forecast_live_scored_total{{horizon_step="2",{m}}}'] > 0
    assert f'forecast_offline_mae{{horizon_step="1",{m}}}' in samples
    route = 'route="/v1/models/{model}/streams/{stream_id}/observations"'
    assert samples[f'forecast_http_requests_total{{method="POST",{route},status="200"}}'] == 12
    assert samples[f'forecast_http_request_duration_seconds_count{{method="POST",{route}}}'] == 12
