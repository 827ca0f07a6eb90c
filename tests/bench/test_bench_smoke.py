"""The harness's pieces on a tiny scale against real servers: structure and positive
numbers only. Speed is never asserted here (it is reported by `python -m bench`)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


def test_one_run_gives_every_headline_ratio_as_median_of_interleaved_rounds(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole `python -m bench` run on a tiny plan: every compared server is measured in
    every round, and each ratio row is the median of the per-round ratios with its min
    and max (recomputed here from the per-round rows)."""
    import bench.__main__ as bench_main

    monkeypatch.setattr(bench_main, "RESULTS", tmp_path)
    plan = Plan(
        "smoke",
        rounds=3,
        floor_batches=[1, 8],
        floor_budget_s=0.01,
        duration_s=0.15,
        concurrency=[1, 2],
        ratio_concurrency=2,
        multi=[(10, 1, "full"), (10, 1, "none")],
        ws=[(1, 2)],
        stateless_concurrency=[1],
        window=4,
        depths=[2, 30],
        scaling_rounds=30,
        memory_targets=[150],
    )
    r = asyncio.run(run(plan, models_dir, tmp_path / "logs"))
    json.dumps(r)
    servers = ["service", "trivial_asgi", "trivial_fastapi", "naive"]
    seen = {(row["round"], row["server"], row["concurrency"]) for row in r["one_obs_rounds"]}
    assert seen == {(k, s, c) for k in range(3) for s in servers for c in (1, 2)}
    # The order rotates, so no server is always measured first.
    firsts = [
        next(row["server"] for row in r["one_obs_rounds"] if row["round"] == k) for k in range(3)
    ]
    assert firsts == servers[:3]
    rps = {
        (x["round"], x["server"]): x["rps"] for x in r["one_obs_rounds"] if x["concurrency"] == 2
    }
    by_name = {x["ratio"]: x for x in r["ratios"]}
    for other, name in (
        ("trivial_asgi", "service 1-obs req/s ÷ trivial raw ASGI"),
        ("trivial_fastapi", "service 1-obs req/s ÷ trivial FastAPI"),
        ("naive", "service 1-obs req/s ÷ naive stateless"),
    ):
        per_round = sorted(rps[(k, "service")] / rps[(k, other)] for k in range(3))
        row = by_name[name]
        assert row["rounds"] == 3
        assert (row["min"], row["value"], row["max"]) == tuple(round(v, 3) for v in per_round)
    ceilings = [x["steps_per_s"] for x in r["multi_ceiling"]]
    best = [max(m["stream_updates_per_s"] for m in r["multi"] if m["round"] == k) for k in range(3)]
    ort = by_name["multi-stream updates/s ÷ raw ORT at B=1024"]
    assert ort["value"] == round(sorted(b / c for b, c in zip(best, ceilings, strict=True))[1], 3)
    assert len(r["scaling"]["ratio_p50_parts"]) == 3
    text = report.render(r)
    assert "trivial raw ASGI" in text and "min" in text and "max" in text


def test_every_compared_server_gets_the_services_uvicorn_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bench/serve.py's UVICORN is what `python -m service` passes uvicorn at its default
    settings (captured from service/__main__.py), and every app goes through it."""
    import service.__main__ as service_main
    from bench import serve

    captured: list[Any] = []

    class Capture:
        def __init__(self, config: Any) -> None:
            captured.append(config)

        def run(self) -> None:
            pass

    monkeypatch.setattr(service_main, "configure_logging", lambda level: None)
    monkeypatch.setattr(service_main.uvicorn, "Server", Capture)
    monkeypatch.setenv("FORECAST_LOG_LEVEL", "warning")
    monkeypatch.setenv("FORECAST_AUTH_DISABLED", "true")
    assert service_main.main() == 0
    (config,) = captured
    # The service's own protocol class (read timeout, head limit) is an httptools one.
    assert issubclass(config.http, HttpToolsProtocol)
    for key, value in serve.UVICORN.items():
        if key != "http":
            assert getattr(config, key) == value, key
    launched: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(serve.uvicorn, "run", lambda app, **kw: launched.append((app, kw)))
    for name in ("trivial-fastapi", "trivial-asgi"):
        serve.main([name, "--port", "1"])
    assert [kw for _, kw in launched] == [{"host": "127.0.0.1", "port": 1, **serve.UVICORN}] * 2


def test_raw_asgi_floor_answers_over_http(tmp_path: Path) -> None:
    async def go() -> tuple[tuple[int, bytes], dict[str, Any]]:
        from bench import client

        with start_trivial(tmp_path, "asgi") as server:
            answer = await client.request(HOST, server.port, "POST", "/x", b'{"a": 1}')
            load = await client.run_load(
                HOST, server.port, "/x", lambda ci, i: b"{}", 2, 0.2, warmup_s=0.05
            )
            return answer, load.summary()

    answer, load = asyncio.run(go())
    assert answer == (200, b'{"ok":true}')
    assert load["errors"] == 0 and set(load["statuses"]) == {"200"}


def test_step_cost_compares_graphs_side_by_side(model: Model) -> None:
    from bench import step_cost

    rows = step_cost.measure([model.version_dir, model.version_dir], rounds=2, budget_s=0.02)
    assert [r["memory"] for r in rows] == ["none", "none"]
    for r in rows:
        for batch in ("b1", "b256"):
            median, low, high = r[batch]  # type: ignore[misc]
            assert 0 < low <= median <= high
    table = step_cost.table(rows)
    assert table.count("\n") == 3 and "µs per stream step, B=256" in table
