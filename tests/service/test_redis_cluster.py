"""The Redis backend on a real Redis Cluster (3 redis-server processes in cluster mode):
streams are spread over the nodes by their hash tag, a multi-stream batch is split by
slot, and the forecasts are those of the memory backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from redis.crc import key_slot
from redis_helpers import RedisCluster
from svc_helpers import SENSOR, LiveServer, held_out, obs_body

STREAM = f"/v1/models/{SENSOR}/streams/{{sid}}/observations"
MANY = f"/v1/models/{SENSOR}/observations"


def keys(sids: list[str]) -> list[bytes]:
    return [f"fc:{{{SENSOR}:{sid}}}:1".encode() for sid in sids]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    nodes = RedisCluster(tmp_path / "cluster").start()
    yield nodes
    nodes.stop()


def many_body(sids: list[str], seconds: np.ndarray, values: np.ndarray, i: int) -> dict:
    return {"streams": [
        {"stream_id": sid, "observations": [obs_body(seconds[i], values[i], seq=i)]}
        for sid in sids
    ]}  # fmt: skip


def test_streams_on_a_redis_cluster_forecast_like_the_memory_backend(
    models_dir: Path, serve: Callable[..., LiveServer], cluster: RedisCluster
) -> None:
    seconds, values = held_out(models_dir, SENSOR, 6)
    reference = serve()
    on = dict(state_backend="redis", redis_url=cluster.url, redis_cluster=True, snapshot_path="")
    a, b = serve(**on), serve(**on)
    sids = [f"c{k}" for k in range(40)]
    with httpx.Client(timeout=30) as c, httpx.Client(base_url=reference.url) as ref:
        for i in range(6):
            # One stream alone, alternating replicas (B reads what A wrote, and back).
            obs = {"observations": [obs_body(seconds[i], values[i], seq=i)]}
            want = ref.post(STREAM.format(sid="one"), json=obs)
            target = a if i % 2 == 0 else b
            got = c.post(target.url + STREAM.format(sid="one"), json=obs)
            assert got.status_code == 200, got.text
            np.testing.assert_allclose(
                got.json()["forecast"]["values"], want.json()["forecast"]["values"],
                rtol=1e-5, atol=1e-5,
            )  # fmt: skip
            # 40 streams in one request: new streams (jobs), then the vectorised lane.
            body = many_body(sids, seconds, values, i)
            want_many = ref.post(MANY, json=body).json()["results"]
            before = cluster.script_calls()
            got_many = c.post(target.url + MANY, json=body)
            assert got_many.status_code == 200, got_many.text
            # One write per hash slot (40 streams here), no read before the step. From
            # i = 2 on, the replica's cached copies are stale (the other one moved the
            # streams): every conditional write loses, is reloaded and written again.
            slots = len({key_slot(k) for k in keys(sids)})
            assert cluster.script_calls() - before == (slots if i < 2 else 2 * slots)
            for w, g in zip(want_many, got_many.json()["results"], strict=True):
                assert "error" not in g, g
                np.testing.assert_allclose(
                    g["forecast"]["values"], w["forecast"]["values"], rtol=1e-5, atol=1e-5
                )
        # A retry on the other replica is the duplicate it is.
        r = c.post(a.url + MANY, json=many_body(sids[:5], seconds, values, 5))
        assert all(x["duplicate"] is True for x in r.json()["results"]), r.text
        st = c.get(f"{a.url}/v1/models/{SENSOR}/streams/c7").json()
        assert st["count"] == 6 and st["seq"] == 5
    # The streams really are sharded: every node holds some of them.
    per_node = cluster.keys_per_node(f"fc:{{{SENSOR}:*")
    assert sum(per_node) == 41 and all(n > 0 for n in per_node), per_node


def test_without_the_cluster_setting_a_batch_across_slots_is_refused_not_half_written(
    models_dir: Path, serve: Callable[..., LiveServer], cluster: RedisCluster
) -> None:
    """Why the setting exists: one script call over many slots is CROSSSLOT (or MOVED)
    on a Cluster. The service answers 503 for those streams and writes none of them."""
    seconds, values = held_out(models_dir, SENSOR, 1)
    plain = serve(state_backend="redis", redis_url=cluster.url, snapshot_path="")
    with httpx.Client(base_url=plain.url, timeout=30) as c:
        r = c.post(MANY, json=many_body([f"x{k}" for k in range(20)], seconds, values, 0))
        results = r.json()["results"]
    assert all(x["error"]["code"] == "state_backend_unavailable" for x in results), results
    assert sum(cluster.keys_per_node(f"fc:{{{SENSOR}:x*")) == 0
