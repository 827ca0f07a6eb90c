"""The gap limit (FORECAST_MAX_GAP_STEPS, 4 in the test settings) across requests, and
what its error advises."""

from __future__ import annotations

import httpx
from svc_helpers import SENSOR, LiveServer

T0 = 1401580800  # 2014-06-01T00:00:00Z
HALF = 1800
BASE = f"/v1/models/{SENSOR}"


def _post(c: httpx.Client, sid: str, obs: list[dict], reset: bool = False) -> httpx.Response:
    body: dict = {"observations": obs}
    if reset:
        body["reset"] = True
    return c.post(f"{BASE}/streams/{sid}/observations", json=body)


def _nulls(k: int) -> dict:
    """An observation k hours after T0 with every value missing (one gap + one missing)."""
    return {"ts": T0 + k * 2 * HALF, "values": [None, None]}


def test_fill_streak_counts_across_requests(client: httpx.Client, serve) -> None:
    first = {"ts": T0, "values": [4000.0, 20.0]}
    # In one request: hour 1 and 2 are 4 filled periods (at the limit), hour 3 is 6.
    assert _post(client, "one", [first]).status_code == 200
    r = _post(client, "one", [_nulls(1), _nulls(2), _nulls(3)])
    assert r.status_code == 422 and r.json()["error"]["code"] == "gap_too_large"
    # The same data one request at a time: the same answer.
    assert _post(client, "split", [first]).status_code == 200
    assert _post(client, "split", [_nulls(1)]).json()["filled"] == 2
    assert _post(client, "split", [_nulls(2)]).json()["filled"] == 2
    before = client.get(f"{BASE}/streams/split").json()
    r = _post(client, "split", [_nulls(3)])
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "gap_too_large"
    assert "5 missing periods in a row" in r.json()["error"]["message"]
    assert "limit of 4 (FORECAST_MAX_GAP_STEPS)" in r.json()["error"]["message"]
    assert client.get(f"{BASE}/streams/split").json() == before
    # The multi-stream endpoint counts the same way.
    many = {"streams": [{"stream_id": "split", "observations": [_nulls(3)]}]}
    assert client.post(f"{BASE}/observations", json=many).json()["results"][0]["status"] == 422
    # A complete observation ends the run (here via the vectorised lane: the next period).
    nxt = {"ts": T0 + 4 * HALF + HALF, "values": [4010.0, 20.0]}
    many = {"streams": [{"stream_id": "split", "observations": [nxt]}]}
    ok = client.post(f"{BASE}/observations", json=many).json()["results"][0]
    assert ok.get("duplicate") is False, ok
    assert _post(client, "split", [_nulls(3) | {"ts": nxt["ts"] + 2 * HALF}]).status_code == 200


def test_fill_streak_survives_a_restart(serve) -> None:
    first = serve()
    with httpx.Client(base_url=first.url) as c:
        assert _post(c, "r", [{"ts": T0, "values": [4000.0, 20.0]}]).status_code == 200
        assert _post(c, "r", [_nulls(1), _nulls(2)]).status_code == 200
    first.stop()
    second: LiveServer = serve()
    with httpx.Client(base_url=second.url) as c:
        r = _post(c, "r", [_nulls(3)])
        assert r.status_code == 422 and r.json()["error"]["code"] == "gap_too_large"


def test_gap_advice_depends_on_where_the_gap_is(client: httpx.Client) -> None:
    assert _post(client, "a", [{"ts": T0, "values": [4000.0, 20.0]}]).status_code == 200
    # A gap inside the request: "reset" would not help, so it is not advised.
    inside = [
        {"ts": T0 + HALF, "values": [4000.0, 20.0]},
        {"ts": T0 + 10 * HALF, "values": [1.0, 2.0]},
    ]
    r = _post(client, "a", inside)
    assert r.status_code == 422
    message = r.json()["error"]["message"]
    assert message.startswith("observations[1].ts: ") and '"reset"' not in message
    assert "inside this request" in message
    again = _post(client, "a", inside, reset=True)
    assert again.status_code == 422 and again.json()["error"]["message"] == message
    # A gap from the stream's last applied ts: reset is the way out, and it works.
    late = [{"ts": T0 + 10 * HALF, "values": [4000.0, 20.0]}]
    r = _post(client, "a", late)
    assert r.status_code == 422 and 'send "reset": true' in r.json()["error"]["message"]
    assert _post(client, "a", late, reset=True).status_code == 200
