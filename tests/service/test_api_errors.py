"""Every kind of bad input gets the right status and leaves state unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from svc_helpers import SENSOR, LiveServer, held_out, iso, obs_body

URL = f"/v1/models/{SENSOR}/streams/x/observations"


@pytest.fixture
def strict(serve) -> LiveServer:
    return serve(max_history=50, max_body_bytes=64 * 1024)


@pytest.fixture
def sclient(strict: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=strict.url, timeout=30) as c:
        yield c


def _bad_cases(t0: str) -> list[tuple[str, bytes, int, str, str]]:
    ok_obs = f'{{"ts": "{t0}", "seq": 1, "values": [1.0, 2.0]}}'
    cases = [
        ("truncated json", b'{"observations": [', 400, "malformed_json", "JSON"),
        ("not an object", b"[1, 2]", 400, "malformed_json", "object"),
        ("NaN literal", f'{{"observations": [{{"ts": "{t0}", "values": [NaN, 1]}}]}}', 400,
         "malformed_json", "JSON"),
        ("infinity", f'{{"observations": [{{"ts": "{t0}", "values": [1e999, 1]}}]}}', 400,
         "malformed_json", "infinity"),
        ("float32 overflow", f'{{"observations": [{{"ts": "{t0}", "values": [1e300, 1]}}]}}',
         422, "invalid_input", "observations[0].values[0]"),
        ("observations missing", b"{}", 422, "invalid_input", "observations"),
        ("observations not a list", b'{"observations": 3}', 422, "invalid_input", "list"),
        ("empty observations", b'{"observations": []}', 422, "invalid_input", "at least one"),
        ("value is a string", f'{{"observations": [{{"ts": "{t0}", "values": ["a", 1]}}]}}',
         422, "invalid_input", "observations[0].values[0]: must be a number"),
        ("wrong feature count", f'{{"observations": [{{"ts": "{t0}", "values": [1, 2, 3]}}]}}',
         422, "invalid_input", "has 3 values, the model takes 2"),
        ("value for a 2-input model", f'{{"observations": [{{"ts": "{t0}", "value": 1}}]}}',
         422, "invalid_input", "observations[0].value"),
        ("ts missing", b'{"observations": [{"values": [1, 2]}]}', 422, "invalid_input",
         "observations[0].ts: is required"),
        ("ts garbage", b'{"observations": [{"ts": "yesterday", "values": [1, 2]}]}', 422,
         "invalid_input", "observations[0].ts"),
        ("ts wrong type", b'{"observations": [{"ts": [1], "values": [1, 2]}]}', 422,
         "invalid_input", "observations[0].ts"),
        ("seq negative", f'{{"observations": [{{"ts": "{t0}", "seq": -1, "values": [1, 2]}}]}}',
         422, "invalid_input", "observations[0].seq"),
        ("seq a string", f'{{"observations": [{{"ts": "{t0}", "seq": "2", "values": [1, 2]}}]}}',
         422, "invalid_input", "observations[0].seq"),
        ("seq a bool", f'{{"observations": [{{"ts": "{t0}", "seq": true, "values": [1, 2]}}]}}',
         422, "invalid_input", "observations[0].seq"),
        ("unknown field", f'{{"observations": [{ok_obs}], "colour": 1}}', 422, "invalid_input",
         "colour"),
        ("unknown obs field", f'{{"observations": [{{"ts": "{t0}", "v": 1, "values": [1, 2]}}]}}',
         422, "invalid_input", "observations[0].v"),
        ("reset not bool", f'{{"observations": [{ok_obs}], "reset": "yes"}}', 422,
         "invalid_input", "reset"),
        ("not increasing", f'{{"observations": [{ok_obs}, {ok_obs}]}}', 422, "invalid_input",
         "observations[1].ts"),
    ]  # fmt: skip
    return [(n, b if isinstance(b, bytes) else b.encode(), s, c, m) for n, b, s, c, m in cases]


def test_bad_inputs_get_right_status_and_change_nothing(
    models_dir: Path, strict: LiveServer, sclient: httpx.Client
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 3)
    assert sclient.post(URL, json={"observations": [obs_body(seconds[0], values[0], 0)]}).is_success
    before = sclient.get(f"/v1/models/{SENSOR}/streams/x").json()
    headers = {"content-type": "application/json"}
    for name, body, status, code, fragment in _bad_cases(iso(seconds[1])):
        r = sclient.post(URL, content=body, headers=headers)
        assert r.status_code == status, (name, r.text)
        err = r.json()["error"]
        assert err["code"] == code, (name, err)
        assert fragment in err["message"], (name, err)
        assert sclient.get(f"/v1/models/{SENSOR}/streams/x").json() == before, name
    # Too long a history and too big a body.
    history = [obs_body(seconds[0] + 1800 * (i + 1), values[0]) for i in range(51)]
    r = sclient.post(URL, json={"observations": history})
    assert r.status_code == 413 and r.json()["error"]["code"] == "history_too_long"
    assert "observations: 51 observations" in r.json()["error"]["message"]
    huge = b'{"observations": [' + b" " * (70 * 1024) + b"]}"
    r = sclient.post(URL, content=huge, headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        yield b'{"observations": ['
        for _ in range(80):
            yield b" " * 1024
        yield b"]}"

    r = sclient.post(URL, content=chunks(), headers=headers)  # chunked: no content-length
    assert r.status_code == 413
    # Unknown model, unknown stream, over-long stream id.
    r = sclient.post("/v1/models/nope/streams/x/observations", json={"observations": []})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"
    r = sclient.get(f"/v1/models/{SENSOR}/streams/never-seen")
    assert r.status_code == 404 and r.json()["error"]["code"] == "stream_not_found"
    r = sclient.get(f"/v1/models/{SENSOR}/streams/{'z' * 300}")
    assert r.status_code == 422 and "stream_id" in r.json()["error"]["message"]
    r = sclient.get("/v1/models/nope")
    assert r.status_code == 404
    r = sclient.put(URL, json={})
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    # Still unchanged, still healthy, and the stream takes the next good observation.
    assert sclient.get(f"/v1/models/{SENSOR}/streams/x").json() == before
    assert sclient.get("/healthz").json() == {"status": "ok"}
    r = sclient.post(URL, json={"observations": [obs_body(seconds[1], values[1], 1)]})
    assert r.status_code == 200 and r.json()["filled"] == 0


def test_stateless_forecast_errors(models_dir: Path, sclient: httpx.Client) -> None:
    seconds, values = held_out(models_dir, SENSOR, 2)
    url = f"/v1/models/{SENSOR}/forecast"
    r = sclient.post(url, json={"observations": [{"ts": iso(seconds[0]), "values": [1]}]})
    assert r.status_code == 422
    r = sclient.post(url, json={"history": []})
    assert r.status_code == 422 and "history" in r.json()["error"]["message"]
    r = sclient.post(url, json={"observations": [obs_body(seconds[0], values[0])]})
    assert r.status_code == 200 and "stream_id" not in r.json()


def test_multi_stream_request_level_errors(sclient: httpx.Client) -> None:
    url = f"/v1/models/{SENSOR}/observations"
    assert sclient.post(url, content=b"{", headers={"content-type": "x"}).status_code == 415
    json_header = {"content-type": "application/json"}
    assert sclient.post(url, content=b"{", headers=json_header).status_code == 400
    assert sclient.post(url, json={"streams": {}}).status_code == 422
    assert sclient.post(url, json={"streams": []}).status_code == 422
    r = sclient.post(url, json={"streams": [1, "a"]}).json()["results"]
    assert [x["status"] for x in r] == [422, 422]
