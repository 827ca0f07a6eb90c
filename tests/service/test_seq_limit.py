"""The largest seq: refused past it (422 naming the field, nothing changes), and a
stream at it is never stuck."""

from __future__ import annotations

from pathlib import Path

import httpx
from svc_helpers import SENSOR, held_out, obs_body

TOP = 2**62 - 1
URL = f"/v1/models/{SENSOR}/streams/top/observations"
MANY = f"/v1/models/{SENSOR}/observations"


def test_a_stream_at_the_largest_seq_refuses_more_and_goes_on_without_seq(
    client: httpx.Client, models_dir: Path
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 4)
    r = client.post(URL, json={"observations": [obs_body(seconds[0], values[0], TOP)]})
    assert r.status_code == 200 and r.json()["seq"] == TOP
    before = client.get(f"/v1/models/{SENSOR}/streams/top").json()
    for body in (
        {"observations": [obs_body(seconds[1], values[1], TOP + 1)]},
        {"observations": [obs_body(seconds[1], values[1], 2**63)]},
    ):
        r = client.post(URL, json=body)
        assert r.status_code == 422
        message = r.json()["error"]["message"]
        assert message.startswith("observations[0].seq: must be an integer in [0, 2^62)")
        assert "without seq" in message  # the way on is named
    entry = {"stream_id": "top", "observations": [obs_body(seconds[1], values[1], TOP + 1)]}
    r = client.post(MANY, json={"streams": [entry]})
    assert r.json()["results"][0]["status"] == 422
    assert "streams[0].observations[0].seq" in r.json()["results"][0]["error"]["message"]
    assert client.get(f"/v1/models/{SENSOR}/streams/top").json() == before  # nothing changed
    # The way on: one observation without seq (ordered by ts), then seqs again.
    r = client.post(URL, json={"observations": [obs_body(seconds[1], values[1])]})
    assert r.status_code == 200 and r.json()["seq"] is None
    r = client.post(URL, json={"observations": [obs_body(seconds[2], values[2], 0)]})
    assert r.status_code == 200 and r.json()["seq"] == 0
    r = client.post(URL, json={"observations": [obs_body(seconds[3], values[3], 1)]})
    assert r.status_code == 200 and r.json()["seq"] == 1
    assert client.get(f"/v1/models/{SENSOR}/streams/top").json()["count"] == 4
