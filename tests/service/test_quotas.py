"""Per-key stream quotas: live streams, new streams per second, and eviction's grace."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from svc_helpers import SENSOR, LiveServer, held_out, obs_body
from test_admission import Gate, _until

from service.engine.quotas import StreamQuotas
from service.errors import TooManyRequests
from service.protocol.access import Principal

MANY = f"/v1/models/{SENSOR}/observations"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _who(name: str, **kw: object) -> Principal:
    return Principal(name, frozenset({"write"}), **kw)  # type: ignore[arg-type]


def test_new_stream_rate_is_a_token_bucket_of_one_second() -> None:
    clock = Clock()
    quotas = StreamQuotas(None, 2.0, 60.0, clock)
    a = _who("a")
    quotas.admit_new(a)
    quotas.admit_new(a)
    with pytest.raises(TooManyRequests) as info:
        quotas.admit_new(a)
    assert info.value.code == "new_stream_rate" and info.value.status == 429
    quotas.admit_new(_who("b"))  # another key has its own bucket
    clock.now += 0.5
    quotas.admit_new(a)  # half a second buys one
    with pytest.raises(TooManyRequests):
        quotas.admit_new(a)


def test_live_stream_quota_and_eviction_grace() -> None:
    clock = Clock()
    quotas = StreamQuotas(2, 1000.0, 60.0, clock)
    a, b = _who("a"), _who("b", max_streams=5)
    for sid in ("a1", "a2"):
        quotas.admit_new(a)
        quotas.settle(a, [sid], 1)
    with pytest.raises(TooManyRequests) as info:
        quotas.admit_new(a)
    assert info.value.code == "stream_quota"
    quotas.admit_new(b)  # the key's own max_streams overrides the default
    quotas.settle(b, ["b1"], 1)
    assert quotas.protected("a1") and quotas.protected("b1")
    assert not quotas.protected("unowned")
    clock.now += 60.0
    assert not quotas.protected("a1")  # past the grace period
    quotas.forget(["a1"])
    quotas.admit_new(a)  # room again
    quotas.settle(a, ["a3"], 1)
    assert quotas.protected("a3")
    assert len(quotas.owner) == 3  # one entry per stream


def test_a_reservation_counts_until_settled_and_unused_ones_are_given_back() -> None:
    quotas = StreamQuotas(2, 1000.0, 60.0, Clock())
    a = _who("a")
    quotas.admit_new(a)
    quotas.admit_new(a)  # two requests in flight, each creating a stream
    with pytest.raises(TooManyRequests):
        quotas.admit_new(a)  # a third cannot overshoot while they run
    quotas.settle(a, [], 1)  # one failed: its reservation is given back
    quotas.settle(a, ["x"], 1)
    assert quotas.live["a"] == 1
    quotas.admit_new(a)
    quotas.settle(a, ["x"], 1)  # a concurrent request created it first: nothing new
    assert quotas.live["a"] == 1 and quotas.owner["x"][0] == "a"


KEYS = {"flood": "scopes=write prefix=f:", "victim": "scopes=read,write prefix=v:"}


def _serve_with_keys(serve: Callable[..., LiveServer], tmp_path: Path, **kw: object) -> LiveServer:
    keys = tmp_path / "keys"
    keys.write_text(
        "".join(f"{hashlib.sha256(k.encode()).hexdigest()} {f} name={k}\n" for k, f in KEYS.items())
    )
    return serve(auth_disabled=False, api_keys_file=keys, max_streams=20, **kw)


def _flood(c: httpx.Client, seconds: object, values: object) -> list[int]:
    statuses: list[int] = []
    for batch in range(10):
        body = {
            "streams": [
                {"stream_id": f"f:{batch}-{k}", "observations": [obs_body(seconds[0], values[0])]}  # type: ignore[index]
                for k in range(20)
            ],
            "forecast": "none",
        }
        r = c.post(MANY, json=body, headers={"Authorization": "Bearer flood"})
        assert r.status_code == 200
        statuses += [e.get("status", 200) for e in r.json()["results"]]
    return statuses


@pytest.mark.parametrize("grace", [3600.0, 0.0])
def test_a_stream_flood_from_one_key_leaves_another_keys_streams_untouched(
    serve: Callable[..., LiveServer], tmp_path: Path, models_dir: Path, grace: float
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 1)
    server = _serve_with_keys(serve, tmp_path, eviction_grace_seconds=grace)
    victim = {"Authorization": "Bearer victim"}
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for k in range(5):
            url = f"/v1/models/{SENSOR}/streams/v:{k}/observations"
            body = {"observations": [obs_body(seconds[0], values[0])]}
            assert c.post(url, json=body, headers=victim).status_code == 200
        statuses = _flood(c, seconds, values)
        alive = [
            c.get(f"/v1/models/{SENSOR}/streams/v:{k}", headers=victim).status_code
            for k in range(5)
        ]
    if grace:
        assert alive == [200] * 5  # every victim stream survived 200 new ids
        assert set(statuses) == {200, 503} and statuses.count(200) == 15  # the flood got the rest
    else:  # without the grace period the same flood evicts them: the test can fail
        assert alive.count(404) == 5


def test_a_keys_live_stream_quota_refuses_more_new_streams(
    serve: Callable[..., LiveServer], tmp_path: Path, models_dir: Path
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 1)
    server = _serve_with_keys(
        serve, tmp_path, key_max_streams=8, key_new_streams_per_second=1e6, metrics_public=True
    )
    with httpx.Client(base_url=server.url, timeout=30) as c:
        statuses = _flood(c, seconds, values)
        text = c.get("/metrics").text
    assert statuses.count(200) == 8 and statuses.count(429) == 192
    assert (
        f'forecast_entry_rejections_total{{model="{SENSOR}",reason="stream_quota"}} 192.0' in text
    )


def test_concurrent_requests_of_one_key_cannot_overshoot_its_stream_quota(
    serve: Callable[..., LiveServer], tmp_path: Path, models_dir: Path
) -> None:
    """The interleaving is forced: the first request is held inside the model (its new
    streams not created yet) while the others are admitted."""
    seconds, values = held_out(models_dir, SENSOR, 2)
    server = _serve_with_keys(
        serve, tmp_path, key_max_streams=3, key_new_streams_per_second=1e6,
        inline_max_rows_steps=0, max_steps_per_request=3,
    )  # fmt: skip
    gate = Gate(server)
    flood = {"Authorization": "Bearer flood"}
    obs = [obs_body(seconds[0], values[0])]

    def many(ids: list[str]) -> dict[str, object]:
        return {"streams": [{"stream_id": s, "observations": obs} for s in ids]}

    with httpx.Client(base_url=server.url, timeout=30) as c, ThreadPoolExecutor(2) as pool:
        first = pool.submit(c.post, MANY, json=many(["f:a", "f:b"]), headers=flood)
        gate.wait_started()  # 2 new streams reserved, none created yet
        quotas = server.service.models[SENSOR].quotas
        second = pool.submit(c.post, MANY, json=many(["f:c", "f:d"]), headers=flood)
        _until(server, lambda m: m.locks.busy("f:c"))  # its one reservation taken
        url = f"/v1/models/{SENSOR}/streams/f:e/observations"
        r = c.post(url, json={"observations": obs}, headers=flood)
        assert r.status_code == 429 and r.json()["error"]["code"] == "stream_quota"
        gate.open()
        assert first.result().status_code == 200
        r = second.result()
        assert [e.get("status", 200) for e in r.json()["results"]] == [200, 429]
        store = server.service.models[SENSOR].store
        live = server.call(lambda: [store.lookup(f"f:{x}") is not None for x in "abcde"])
        assert live == [True, True, True, False, False]
        assert server.call(lambda: quotas.live["flood"]) == 3
        # A request refused whole after its reservations (4 steps > 3) gives them back.
        server.call(lambda: quotas.forget(["f:b", "f:c"]))
        two = [obs_body(seconds[k], values[k]) for k in (0, 1)]
        body = {"streams": [{"stream_id": s, "observations": two} for s in ("f:x", "f:y")]}
        r = c.post(MANY, json=body, headers=flood)
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_steps"
        assert server.call(lambda: quotas.live["flood"]) == 1
        r = c.post(url, json={"observations": obs}, headers=flood)
        assert r.status_code == 200
