"""The memory arena store: layout, LRU, expiry, snapshot, memory per stream."""

from __future__ import annotations

import sys
import time
import tracemalloc

import numpy as np
import pytest

from service.engine.store import NO_SEQ, MemoryStateStore, StoreLayout
from service.errors import QueueFull

LAYOUT = StoreLayout(state_size=8, forecast_size=6, n_inputs=2)


def _store(capacity: int = 4, busy: set[str] | None = None, evicted: list | None = None):
    busy = busy if busy is not None else set()
    sink = evicted if evicted is not None else []
    return MemoryStateStore(LAYOUT, capacity, busy.__contains__, sink.extend)


def _put(store: MemoryStateStore, sid: str, value: float, seq: int = 0, reset: bool = False):
    return store.put(
        sid,
        np.full(8, value, np.float32),
        np.full(6, value, np.float32),
        np.array([value, value], np.float32),
        seq,
        1000.0 + seq,
        1,
        reset,
    )


def test_put_get_read_and_forget() -> None:
    store = _store()
    slot = _put(store, "a", 1.5, seq=3)
    assert store.lookup("a") == slot
    np.testing.assert_array_equal(store.get_rows(np.array([slot])), np.full((1, 8), 1.5))
    assert store.read(slot) == (3, 1003.0, 1)
    _put(store, "a", 2.0, seq=4)
    assert store.read(slot) == (4, 1004.0, 2)  # count accumulates
    assert store.forget("a") and store.lookup("a") is None and not store.forget("a")
    assert store.seq[slot] == NO_SEQ and len(store) == 0


def test_lru_eviction_skips_busy_streams() -> None:
    evicted: list[str] = []
    busy = {"a"}
    store = _store(capacity=3, busy=busy, evicted=evicted)
    for sid in "abc":
        _put(store, sid, 1.0)
        time.sleep(0.001)
    _put(store, "d", 1.0)
    assert evicted == ["b"]  # a is older but busy
    busy.discard("a")
    busy.update("cd")
    _put(store, "e", 1.0)  # a is the oldest and now free
    assert evicted == ["b", "a"]
    busy.update("e")
    with pytest.raises(QueueFull):
        _put(store, "f", 1.0)


def test_expiry() -> None:
    store = _store()
    _put(store, "old", 1.0)
    store.touched[store.lookup("old")] -= 100
    _put(store, "new", 1.0)
    assert store.expire(50) == ["old"]
    assert store.lookup("new") is not None and len(store) == 1


def test_snapshot_restore_roundtrip_keeps_most_recent_when_smaller() -> None:
    store = _store(capacity=4)
    for k, sid in enumerate("abc"):
        _put(store, sid, float(k), seq=k)
    store.touched[store.lookup("a")] -= 100  # a is the least recently used
    snap = store.snapshot()
    again = _store(capacity=4)
    assert again.restore(snap) == 3
    for k, sid in enumerate("abc"):
        slot = again.lookup(sid)
        assert slot is not None and again.read(slot) == (k, 1000.0 + k, 1)
        np.testing.assert_array_equal(again.forecast(slot), np.full(6, float(k)))
    small = _store(capacity=2)
    assert small.restore(snap) == 2 and small.lookup("a") is None
    with pytest.raises(ValueError):
        MemoryStateStore(StoreLayout(9, 6, 2), 4, lambda s: False, lambda e: None).restore(snap)


def test_memory_per_stream_for_default_sensor_model_is_under_2kb() -> None:
    # H=64, L=2 LSTM: h and c are [2, 64] each; horizon 48 x 3 quantiles; 2 inputs.
    layout = StoreLayout(state_size=2 * 2 * 64, forecast_size=48 * 3, n_inputs=2)
    n = 20_000
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    store = MemoryStateStore(layout, n, lambda s: False, lambda e: None)
    state = np.ones(layout.state_size, np.float32)
    forecast = np.ones(layout.forecast_size, np.float32)
    inputs = np.ones(2, np.float32)
    for k in range(n):
        store.put(f"sensor-{k:06d}", state, forecast, inputs, k, float(k), 1, False)
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    per_stream = used / n
    assert per_stream <= 2048, per_stream
    assert sys.getsizeof(store.index) / n < 100
