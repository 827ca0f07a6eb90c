"""bench/columnar_bench.py's pieces on a tiny model against a real server: structure and
positive numbers only (speed is reported by the bench, never asserted)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from bench import columnar_loads as loads
from bench.columnar_bench import compare_cores, in_process
from bench.payloads import Model, find_models
from bench.servers import start_service


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Model]:
    from training.tiny import make_tiny_artifact

    root = tmp_path_factory.mktemp("columnar_bench_models")
    make_tiny_artifact(root, "sensor")
    (model,) = find_models(root)
    return root, model


def test_in_process_rows_and_profile(tiny: tuple[Path, Model]) -> None:
    models_dir, model = tiny
    out = asyncio.run(in_process(models_dir, model, requests=2))
    json.dumps(out)
    for form in ("columnar", "binary", "row"):
        for detail in ("full", "none"):
            assert out[f"{form}_{detail}_cpu_us_per_stream"] > 0
            assert out[f"{form}_{detail}_calls_per_stream"] > 0
    for part in ("parse", "ort", "answer"):
        assert out[f"profile_{part}_us"] > 0


def test_server_loads(tiny: tuple[Path, Model], tmp_path: Path) -> None:
    models_dir, model = tiny

    async def go(port: int) -> dict[str, object]:
        out: dict[str, object] = {}
        for form in ("json", "binary", "row"):
            raw = loads.bulk(model, port, f"t{form}", form, "none")
            out[form] = await loads.closed_loop(port, raw, 1, 0.3, warmup=0.3, units=1000)
        out["ws"] = await loads.ws_columnar(model, port, "tws", "full", 0.3, warmup=0.3)
        out["fair"] = await loads.fairness(model, port, "tfair", 0.3)
        return out

    with start_service(models_dir, tmp_path, accuracy_sample_fraction=0.0) as server:
        r = asyncio.run(go(server.port))
    json.dumps(r)
    for form in ("json", "binary", "row"):
        assert r[form]["per_s"] > 0  # type: ignore[index]
    assert r["ws"] > 0  # type: ignore[operator]
    assert r["fair"]["single_under_bulk_p99_ms"] > 0  # type: ignore[index]


def test_compare_cores_reports_both_setups_and_their_ratios(tiny: tuple[Path, Model]) -> None:
    models_dir, model = tiny
    before = os.sched_getaffinity(0)
    out = compare_cores(models_dir, model, rounds=1, secs=0.2, conns=1)
    assert os.sched_getaffinity(0) == before  # the test process is not left pinned
    json.dumps(out)
    for form, detail in (("json", "full"), ("json", "none"), ("binary", "full")):
        for setup in ("one_core", "all_cores"):
            assert out[f"{setup}_{form}_{detail}"]["median"] > 0
            assert out[f"{setup}_{form}_{detail}_vs_ceiling"]["median"] > 0
        assert out[f"{form}_{detail}_all_vs_one"]["median"] > 0
    assert out["ort_ceiling_b1024"]["median"] > 0
