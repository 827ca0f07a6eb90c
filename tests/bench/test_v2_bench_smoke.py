"""bench.v2_bench on a tiny scale against a real service: every scenario answers, the
table has every row, and the raw v2 body is byte for byte what tritonclient sends.
Speed is never asserted here (it is reported by `python -m bench.v2_bench`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as thttp
from tritonclient.http._utils import _get_inference_request

from bench import v2_bench
from bench.payloads import Model, find_models
from bench.servers import free_port, start_service


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.tiny import make_tiny_artifact

    root = tmp_path_factory.mktemp("v2_bench_models")
    make_tiny_artifact(root, "sensor")
    return root


def test_raw_body_is_what_tritonclient_sends() -> None:
    values = [4102.5, 13.25]
    x = thttp.InferInput("INPUT", [1, 1, 2], "FP32")
    x.set_data_from_numpy(np.asarray(values, dtype=np.float32).reshape(1, 1, 2))
    ts = thttp.InferInput("TS", [1, 1], "INT64")
    ts.set_data_from_numpy(np.array([[1401580800]], dtype=np.int64))
    theirs, length = _get_inference_request([x, ts], "", None, "s-1", False, False, 0, None, None)
    ours, our_length = v2_bench.v2_body(2, "s-1", values, 1401580800)
    assert (ours, our_length) == (theirs, length)


def test_every_scenario_runs_and_the_table_has_every_row(model_dir: Path, tmp_path: Path) -> None:
    (model,) = find_models(model_dir)
    assert isinstance(model, Model)
    grpc_port = free_port()
    with start_service(model_dir, tmp_path, grpc_port=grpc_port) as server:
        runs = asyncio.run(v2_bench.measure(model, server.port, grpc_port, server.pid, 1, 0.2))
    assert {(r["scenario"], r["concurrency"]) for r in runs} == {
        (s, c) for s in v2_bench.SCENARIOS for c in (1, 16)
    }
    assert all(r["rps"] > 0 and r["p50_ms"] > 0 and r["server_cpu_us"] > 0 for r in runs)
    table = v2_bench.table(runs)
    assert table.count("\n") == 2 + 2 * len(v2_bench.SCENARIOS) - 1
