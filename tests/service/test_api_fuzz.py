"""Random malformed requests: never a crash, never a 5xx, never a changed stream."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
from svc_helpers import SENSOR, LiveServer, held_out, obs_body

GOOD_STATUSES = {200, 400, 404, 405, 409, 413, 422}
JSON = {"content-type": "application/json"}


def _mutations(rng: random.Random, valid: dict) -> bytes:
    text = json.dumps(valid)
    choice = rng.randrange(9)
    if choice == 0:  # truncate
        return text[: rng.randrange(len(text))].encode()
    if choice == 1:  # flip a byte
        data = bytearray(text.encode())
        data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if choice == 2:  # deep nesting
        depth = rng.choice([10, 600, 5000])
        return ("[" * depth + "]" * depth).encode()
    if choice == 3:  # swap a value for something odd
        odd = rng.choice([None, True, "x", [], {}, 1e308, -1, 2**70, "2014-13-45", "\u0000"])
        obs = dict(valid["observations"][0])
        obs[rng.choice(["ts", "seq", "values"])] = odd
        return json.dumps({"observations": [obs]}).encode()
    if choice == 4:  # odd values inside the list
        obs = dict(valid["observations"][0])
        obs["values"] = [rng.choice([None, "1", [], 1e39, -1e39, True, 0]) for _ in range(2)]
        return json.dumps({"observations": [obs]}).encode()
    if choice == 5:
        return rng.randbytes(rng.randrange(1, 200))
    if choice == 6:  # unicode and long keys
        return json.dumps({"observations": valid["observations"], "ü" * 300: 1}).encode()
    if choice == 7:
        return json.dumps({"observations": [valid["observations"][0]] * 3}).encode()
    return json.dumps([valid]).encode()


def test_fuzzed_requests_never_break_the_service(models_dir: Path, server: LiveServer) -> None:
    seconds, values = held_out(models_dir, SENSOR, 3)
    rng = random.Random(1234)
    url = f"/v1/models/{SENSOR}/streams/f/observations"
    with httpx.Client(base_url=server.url, timeout=30) as c:
        first = {"observations": [obs_body(seconds[0], values[0], 0)]}
        assert c.post(url, json=first).status_code == 200
        before = c.get(f"/v1/models/{SENSOR}/streams/f").json()
        valid = {"observations": [obs_body(seconds[1], values[1], 1)]}
        targets = [url, f"/v1/models/{SENSOR}/observations", f"/v1/models/{SENSOR}/forecast"]
        for _ in range(300):
            body = _mutations(rng, valid)
            r = c.post(rng.choice(targets), content=body, headers=JSON)
            assert r.status_code in GOOD_STATUSES, (body[:200], r.status_code, r.text[:300])
            if r.status_code != 200:
                assert set(r.json()) == {"error"} and r.json()["error"]["message"]
            now = c.get(f"/v1/models/{SENSOR}/streams/f").json()
            if now != before:  # only a well-formed next observation may have applied
                assert now["seq"] == 1 and now["count"] == 2
                before = now
        for path in ["/v1/models/%00/streams/x", f"/v1/models/{SENSOR}/streams/%20", "/v1//x"]:
            assert c.get(path).status_code in GOOD_STATUSES
        assert c.get("/healthz").status_code == 200
        assert c.post(url, json=valid).status_code == 200
