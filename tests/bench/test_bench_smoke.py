"""The harness's pieces on a tiny scale against real servers: structure and positive
numbers only. Speed is never asserted here (it is reported by `python -m bench`)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from bench import floor, report, scenarios, server_metrics
from bench.__main__ import Plan, run
from bench.payloads import Model, find_models
from bench.servers import HOST, cpus, start_naive, start_service, start_trivial
from bench.ws_load import run_ws


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.tiny import make_tiny_artifact

    root = tmp_path_factory.mktemp("bench_models")
    make_tiny_artifact(root, "sensor")
    return root


@pytest.fixture(scope="module")
def model(models_dir: Path) -> Model:
    (m,) = find_models(models_dir)
    return m


def _positive(row: dict[str, Any], *keys: str) -> None:
    for k in keys:
        assert isinstance(row[k], int | float) and row[k] > 0, (k, row)


def test_floor_rows(model: Model) -> None:
    rows = floor.measure(model, [1, 8], budget_s=0.02)
    assert [r["batch"] for r in rows] == [1, 8]
    for r in rows:
        _positive(r, "us_per_call", "us_per_stream_step", "steps_per_s")
    assert floor.sequence_us(model, 16, budget_s=0.02) > 0


def test_service_scenarios(models_dir: Path, model: Model, tmp_path: Path) -> None:
    async def go() -> dict[str, Any]:
        out: dict[str, Any] = {}
        with start_service(models_dir, tmp_path) as server:
            out["affinity"] = server.affinity()
            before = await server_metrics.snapshot(server, model.name)
            out["one"] = await scenarios.one_obs(server, model, 2, 0.3, "t", prime=4)
            after = await server_metrics.snapshot(server, model.name)
            out["seen"] = server_metrics.delta(before, after)
            out["multi"] = await scenarios.multi(server, model, 10, 2, 0.3)
            out["multi_none"] = await scenarios.multi(server, model, 10, 1, 0.3, "none")
            out["ws"] = await run_ws(HOST, server.port, model, 1, 4, 0.3, warmup_s=0.1)
            out["stateless"] = await scenarios.stateless(server, model, 8, 1, 0.3)
            out["scaling"] = await scenarios.scaling(server, model, [2, 30], 20, max_history=16)
            out["memory"] = await scenarios.memory(server, model, [150], per_request=50)
        return out

    r = asyncio.run(go())
    json.dumps(r)  # JSON-able
    assert r["affinity"] == sorted(cpus()[0])  # the server runs on its own core
    if len(os.sched_getaffinity(0)) >= 2:
        assert not set(cpus()[0]) & set(cpus()[1])
    _positive(r["one"], "requests", "rps", "p50_ms", "p99_ms")
    assert r["one"]["errors"] == 0 and set(r["one"]["statuses"]) == {"200"}
    _positive(r["seen"], "ort_calls", "rows_per_call", "us_per_ort_call", "ort_share_pct")
    _positive(r["multi"], "rps", "stream_updates_per_s")
    assert r["multi"]["errors"] == 0
    _positive(r["multi_none"], "rps", "stream_updates_per_s")
    assert r["multi_none"]["errors"] == 0 and r["multi_none"]["forecast"] == "none"
    _positive(r["ws"], "observations", "observations_per_s")
    assert r["ws"]["errors"] == 0
    _positive(r["stateless"], "requests", "rps")
    assert [row["earlier_observations"] for row in r["scaling"]["rows"]] == [2, 30]
    _positive(r["scaling"], "ratio_p50_last_vs_first")
    (mem,) = r["memory"]["rows"]
    assert mem["live_streams"] == 150
    _positive(mem, "rss_mb", "create_streams_per_s")


def test_alternatives_answer(models_dir: Path, model: Model, tmp_path: Path) -> None:
    async def go() -> list[dict[str, Any]]:
        rows = []
        with start_trivial(tmp_path) as server:
            rows.append(await scenarios.one_obs(server, model, 1, 0.2, "t"))
        with start_naive(models_dir, tmp_path, window=8) as server:
            rows.append(await scenarios.one_obs(server, model, 1, 0.2, "n", prime=8))
        return rows

    for row in asyncio.run(go()):
        _positive(row, "requests", "rps")
        assert set(row["statuses"]) == {"200"}


def test_report_renders_every_bar() -> None:
    fake: dict[str, Any] = {
        "mode": "test",
        "machine": {"cpu": "x", "cores": 2},
        "ratio_concurrency": 16,
        "naive_window": 168,
        "service_one_obs": [{"concurrency": 16, "rps": 100.0}],
        "trivial": [{"concurrency": 16, "rps": 100.0}],
        "naive": [{"concurrency": 16, "rps": 10.0}],
        "multi": [{"streams_per_request": 1000, "stream_updates_per_s": 200_000.0}],
        "ort_ceiling_b1024_steps_per_s": 400_000.0,
        "scaling": {"ratio_p50_last_vs_first": 1.0, "rows": []},
        "memory": {"rows": [{"live_streams": 10, "bytes_per_stream": 1024.0}]},
    }
    fake["ratios"] = report.ratios(fake)
    assert [r["met"] for r in fake["ratios"]] == ["yes"] * len(fake["ratios"])
    assert len(fake["ratios"]) == 7
    assert "Ratios against the bars" in report.render(fake)


def test_quick_plan_is_bounded() -> None:
    # The plan's shape, not its speed: every scenario the issue names is in it.
    p = Plan("quick")
    assert p.floor_batches == [1, 8, 64, 256, 1024, 4096]
    assert p.concurrency == [1, 16, 64] and p.depths == [10, 1000, 100_000]
    assert callable(run)
