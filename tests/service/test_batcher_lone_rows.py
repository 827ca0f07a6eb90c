"""The batcher puts a lone row (a single observation) before queued bulk blocks, and keeps
lone rows in arrival order among themselves (real tiny model; ORT calls recorded)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from svc_helpers import SENSOR

from service.engine.artifacts import LoadedModel, load_artifact
from service.engine.batcher import Batcher, Item
from service.metrics import Metrics


@pytest.fixture
def loaded(models_dir: Path):
    model = load_artifact(models_dir / SENSOR / "1", ["CPUExecutionProvider"], 1)
    yield model
    model.runtime.close()


def test_lone_rows_go_before_queued_blocks_in_arrival_order(loaded: LoadedModel) -> None:
    spec = loaded.spec
    arena = np.zeros((16, spec.state_size), dtype=np.float32)
    calls: list[np.ndarray] = []
    run = loaded.runtime.run

    def recorded(x: np.ndarray, state: np.ndarray) -> Any:
        calls.append(x[:, 0, 0].copy())  # each row's first feature: who was in the call
        return run(x, state)

    loaded.runtime.run = recorded  # type: ignore[method-assign]
    metrics = Metrics().for_model(SENSOR, spec.horizon)
    f = spec.n_features

    async def go() -> None:
        b = Batcher(loaded.runtime, lambda slots: arena[slots], f, 4, 64, metrics)
        b.start()
        x = np.full((8, f), 1.0, dtype=np.float32)
        blocks = [Item.block(x[:4], np.arange(4)), Item.block(x[4:], np.arange(4, 8))]
        done = [b.submit(blocks)]  # a bulk request's two blocks, queued first
        done += [b.submit([Item([[v] * f], -1, None)]) for v in (7.0, 8.0)]  # then two lone rows
        await asyncio.wait_for(asyncio.gather(*done), 10)
        await b.stop()

    asyncio.run(go())
    assert [c.tolist() for c in calls] == [[7.0, 8.0], [1.0] * 4, [1.0] * 4]
