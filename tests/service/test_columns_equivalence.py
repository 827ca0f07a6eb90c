"""The columnar form against the row multi-stream and single-stream forms, over a real
server (``python -m service`` in a subprocess): the same data gives the same answers and
the same stored states, with gaps, missing values, retries, out-of-order, new streams
and bad rows mixed into one request; on the memory and the Redis backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from proc_helpers import ServiceProcess
from redis_helpers import RedisServer
from svc_helpers import SENSOR, held_out, iso

COLUMNS = f"/v1/models/{SENSOR}/columns"
MANY = f"/v1/models/{SENSOR}/observations"

# A row: (stream, ts seconds, seq, values) with None for a missing value.
Row = tuple[str, float, int | None, list[float | None]]


def _columns(c: httpx.Client, rows: list[Row], prefix: str) -> list[dict[str, Any]]:
    """The columnar request, answered as one dict per row (for comparison)."""
    body = {
        "stream_ids": [prefix + sid for sid, *_ in rows],
        "ts": [iso(ts) for _, ts, _, _ in rows],
        "seqs": [seq for _, _, seq, _ in rows],
        "values": [values for *_, values in rows],
    }
    r = c.post(COLUMNS, json=body)
    assert r.status_code == 200, r.text
    a = r.json()
    errors = {e["index"]: e for e in a["errors"]}
    out = []
    for i in range(len(rows)):
        if i in errors:
            assert a["status"][i] == errors[i]["status"] != 200
            assert a["seq"][i] is None and a["ts"][i] is None
            out.append({"status": a["status"][i], "code": errors[i]["code"]})
        else:
            out.append(
                {
                    "status": 200,
                    "seq": a["seq"][i],
                    "ts": a["ts"][i],
                    "filled": a["filled"][i],
                    "duplicate": a["duplicate"][i],
                    "values": a["forecast"]["values"][i],
                }
            )
    return out


def _obs(ts: float, seq: int | None, values: list[float | None]) -> dict[str, Any]:
    body: dict[str, Any] = {"ts": iso(ts), "values": values}
    if seq is not None:
        body["seq"] = seq
    return body


def _one(result: dict[str, Any], status: int) -> dict[str, Any]:
    if "error" in result:
        return {"status": status, "code": result["error"]["code"]}
    f = result["forecast"]
    return {
        "status": 200,
        **{k: result[k] for k in ("seq", "ts", "filled", "duplicate")},
        "values": f["values"],
    }


def _many(c: httpx.Client, rows: list[Row], prefix: str) -> list[dict[str, Any]]:
    streams = [
        {"stream_id": prefix + sid, "observations": [_obs(ts, seq, v)]} for sid, ts, seq, v in rows
    ]
    r = c.post(MANY, json={"streams": streams})
    assert r.status_code == 200, r.text
    return [_one(x, x.get("status", 200)) for x in r.json()["results"]]


def _single(c: httpx.Client, rows: list[Row], prefix: str) -> list[dict[str, Any]]:
    out = []
    for sid, ts, seq, v in rows:
        r = c.post(
            f"/v1/models/{SENSOR}/streams/{prefix}{sid}/observations",
            json={"observations": [_obs(ts, seq, v)]},
        )
        out.append(_one(r.json(), r.status_code))
    return out


def _same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert {k: v for k, v in g.items() if k != "values"} == {
            k: v for k, v in w.items() if k != "values"
        }
        if "values" in w:
            np.testing.assert_allclose(g["values"], w["values"], rtol=1e-5, atol=1e-4)


def _rounds(seconds: np.ndarray, values: np.ndarray, n: int) -> list[list[Row]]:
    def v(step: int, k: int) -> list[float | None]:
        return [float(x) + k for x in values[step]]

    first = [(f"s{k}", seconds[0], 0, v(0, k)) for k in range(n)]  # new streams
    second = [(f"s{k}", seconds[1], 1, v(1, k)) for k in range(n)]  # the lane
    miss = v(2, 4)
    miss[0] = None
    mixed: list[Row] = [(f"s{k}", seconds[2], 2, v(2, k)) for k in range(8, n)]
    mixed[3:3] = [
        ("s0", seconds[1], 1, v(1, 0)),  # a retry of what s0 applied last: duplicate
        ("s1", seconds[0], 0, v(0, 1)),  # backwards: out of order
        ("s2", seconds[5], 5, v(5, 2)),  # a gap of three periods
        ("s3", seconds[2], 2, [v(2, 3)[0], "x"]),  # type: ignore[list-item]  # bad value
        ("s4", seconds[2], 2, miss),  # a missing value
        ("fresh", seconds[2], 2, v(2, 9)),  # a new stream
        ("s5", seconds[2], None, [1e39, 1.0]),  # does not fit float32
        ("s6", seconds[2], 2, v(2, 6)),
        ("s7", seconds[3], 3, v(3, 7)),
    ]
    after = [(f"s{k}", seconds[6], 6, v(6, k)) for k in range(n)]
    return [first, second, mixed, after]


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_columnar_row_and_single_forms_agree(
    models_dir: Path, tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    env = {
        "FORECAST_ACCURACY_SAMPLE_FRACTION": "0",
        "FORECAST_MAX_BATCH_ROWS": "8",  # the lane's block runs in several ORT calls
        "FORECAST_SNAPSHOT_PATH": "",
    }
    if backend == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        env |= {"FORECAST_STATE_BACKEND": "redis", "FORECAST_REDIS_URL": redis.url}
    seconds, values = held_out(models_dir, SENSOR, 8)
    service = ServiceProcess(models_dir, tmp_path / "service.log", **env).start()
    try:
        with httpx.Client(base_url=service.url, timeout=30) as c:
            for rows in _rounds(seconds, values, 24):
                col = _columns(c, rows, "c-")
                _same(col, _many(c, rows, "r-"))
                _same(col, _single(c, rows, "o-"))
            # A stream twice in one request and an invalid id: the later entry and the
            # bad id fail alone, in both bulk forms.
            rows = [
                ("s9", seconds[7], 7, [1.0, 2.0]),
                ("s9", seconds[7], 7, [1.0, 2.0]),
                ("bad id", seconds[7], 7, [1.0, 2.0]),
            ]
            col = _columns(c, rows, "c-")
            assert [r["status"] for r in col] == [200, 422, 422]
            _same(col, _many(c, rows, "r-"))
            # The stored states: every stream's last position, count and forecast.
            names = [f"s{k}" for k in range(24)] + ["fresh"]
            for sid in names:
                got = {p: c.get(f"/v1/models/{SENSOR}/streams/{p}-{sid}").json() for p in "cro"}
                assert got["c"]["count"] >= 1
                for p in "r" if sid == "s9" else "ro":  # s9's last request: bulk forms only
                    assert {k: got["c"][k] for k in ("seq", "ts", "count")} == {
                        k: got[p][k] for k in ("seq", "ts", "count")
                    }, sid
                    np.testing.assert_allclose(
                        got["c"]["forecast"]["values"],
                        got[p]["forecast"]["values"],
                        rtol=1e-5,
                        atol=1e-4,
                    )
    finally:
        service.stop()
