"""Per-stream state store: the protocol every backend implements, and the memory arena.

Everything a stream needs lives in preallocated arrays indexed by a slot number:
the recurrent state, the last forecast (to answer a retry exactly), the last raw inputs
(to fill gaps), the last seq/ts, the observation count, the current run of filled
periods (so the gap limit holds across requests) and the last-use time. A stream
costs its rows plus one dict entry, ~1.8 KB for the default sensor model.
np.zeros is lazily backed by the OS, so an unused capacity costs no resident memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from service.errors import QueueFull

NO_SEQ = -1  # seq arena value of a stream whose clients never sent a seq


@dataclass(frozen=True)
class StoreLayout:
    state_size: int
    forecast_size: int  # horizon * quantiles
    n_inputs: int


class StateStore(Protocol):
    """Everything the engine reads or writes of a stream goes through this (the scalar
    path, the vectorised lane, the batcher and the snapshot alike), so a second backend
    serves all of them. Streams are addressed by slot, a small int a backend hands out
    for a stream it holds (for a shared backend: its local cache row)."""

    layout: StoreLayout

    def __len__(self) -> int: ...
    def lookup(self, stream_id: str) -> int | None: ...
    def streams(self) -> list[tuple[str, int]]: ...
    def get_rows(self, slots: np.ndarray) -> np.ndarray: ...
    def positions(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...
    def forecast_rows(self, slots: np.ndarray) -> np.ndarray: ...
    def read(self, slot: int) -> tuple[int, float, int]: ...
    def forecast(self, slot: int) -> np.ndarray: ...
    def inputs(self, slot: int) -> np.ndarray: ...
    def fill_streak(self, slot: int) -> int: ...
    def put(
        self,
        stream_id: str,
        state: np.ndarray,
        forecast: np.ndarray,
        inputs: np.ndarray,
        seq: int,
        ts: float,
        added: int,
        reset: bool,
        streak: int = 0,
    ) -> int: ...
    def put_rows(
        self,
        slots: np.ndarray,
        state: np.ndarray,
        forecast: np.ndarray,
        inputs: np.ndarray,
        seq: np.ndarray,
        ts: np.ndarray,
    ) -> None: ...
    def touch(self, slot: int) -> None: ...
    def forget(self, stream_id: str) -> bool: ...
    def expire(self, max_idle: float) -> list[str]: ...
    def snapshot(self) -> dict[str, np.ndarray]: ...
    def restore(self, arrays: dict[str, np.ndarray]) -> int: ...


class MemoryStateStore:
    def __init__(
        self,
        layout: StoreLayout,
        capacity: int,
        is_busy: Callable[[str], bool],
        on_evict: Callable[[list[str]], None],
    ) -> None:
        self.layout = layout
        self.capacity = capacity
        self.state = np.zeros((capacity, layout.state_size), dtype=np.float32)
        self.forecasts = np.zeros((capacity, layout.forecast_size), dtype=np.float32)
        self.last_inputs = np.zeros((capacity, layout.n_inputs), dtype=np.float32)
        self.seq = np.full(capacity, NO_SEQ, dtype=np.int64)
        self.ts = np.zeros(capacity, dtype=np.float64)
        self.count = np.zeros(capacity, dtype=np.int64)
        # Consecutive filled periods (gaps, missing values) ending at the last applied ts.
        self.streak = np.zeros(capacity, dtype=np.int32)
        # Free slots read +inf so eviction's argpartition never picks them.
        self.touched = np.full(capacity, np.inf, dtype=np.float64)
        self.index: dict[str, int] = {}
        self.ids: list[str | None] = [None] * capacity
        # Pop from the end: slots are handed out 0, 1, 2, ... so touched pages stay dense.
        self._free = list(range(capacity - 1, -1, -1))
        self._is_busy = is_busy
        self._on_evict = on_evict

    def __len__(self) -> int:
        return len(self.index)

    def lookup(self, stream_id: str) -> int | None:
        return self.index.get(stream_id)

    def streams(self) -> list[tuple[str, int]]:
        return list(self.index.items())

    def get_rows(self, slots: np.ndarray) -> np.ndarray:
        return self.state[slots]

    def positions(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(last seq, last ts) of many streams."""
        return self.seq[slots], self.ts[slots]

    def forecast_rows(self, slots: np.ndarray) -> np.ndarray:
        return self.forecasts[slots]

    def read(self, slot: int) -> tuple[int, float, int]:
        return int(self.seq[slot]), float(self.ts[slot]), int(self.count[slot])

    def forecast(self, slot: int) -> np.ndarray:
        return self.forecasts[slot]

    def inputs(self, slot: int) -> np.ndarray:
        return self.last_inputs[slot]

    def fill_streak(self, slot: int) -> int:
        return int(self.streak[slot])

    def touch(self, slot: int) -> None:
        self.touched[slot] = time.monotonic()

    def put(
        self,
        stream_id: str,
        state: np.ndarray,
        forecast: np.ndarray,
        inputs: np.ndarray,
        seq: int,
        ts: float,
        added: int,
        reset: bool,
        streak: int = 0,
    ) -> int:
        """Commit a stream's new rows and sequence position in one go (all or nothing)."""
        slot = self.index.get(stream_id)
        if slot is None:
            slot = self._allocate(stream_id)
            reset = True
        self.state[slot] = state
        self.forecasts[slot] = forecast.reshape(-1)
        self.last_inputs[slot] = inputs
        self.seq[slot] = seq
        self.ts[slot] = ts
        self.count[slot] = added if reset else self.count[slot] + added
        self.streak[slot] = streak
        self.touched[slot] = time.monotonic()
        return slot

    def put_rows(
        self,
        slots: np.ndarray,
        state: np.ndarray,
        forecast: np.ndarray,
        inputs: np.ndarray,
        seq: np.ndarray,
        ts: np.ndarray,
    ) -> None:
        """One step for many existing streams at once (distinct slots), vectorised."""
        self.state[slots] = state
        self.forecasts[slots] = forecast
        self.last_inputs[slots] = inputs
        self.seq[slots] = seq
        self.ts[slots] = ts
        self.count[slots] += 1
        self.streak[slots] = 0  # one complete next-period observation each
        self.touched[slots] = time.monotonic()

    def _allocate(self, stream_id: str) -> int:
        if not self._free:
            self._evict()
        slot = self._free.pop()
        self.index[stream_id] = slot
        self.ids[slot] = stream_id
        return slot

    def _evict(self) -> None:
        # Evict a small batch (1% of capacity) of the least recently used at once: one
        # O(capacity) sort pays for many allocations instead of one.
        want = max(1, self.capacity // 100)
        order = np.argsort(self.touched, kind="stable")
        evicted: list[str] = []
        for slot in order:
            stream_id = self.ids[int(slot)]
            if stream_id is None or self._is_busy(stream_id):
                continue
            self._release(stream_id, int(slot))
            evicted.append(stream_id)
            if len(evicted) >= want:
                break
        if not evicted:
            raise QueueFull("every stream slot is busy; retry shortly", code="streams_full")
        self._on_evict(evicted)

    def _release(self, stream_id: str, slot: int) -> None:
        del self.index[stream_id]
        self.ids[slot] = None
        self.touched[slot] = np.inf
        self.seq[slot] = NO_SEQ
        self.count[slot] = 0
        self.streak[slot] = 0
        self._free.append(slot)

    def forget(self, stream_id: str) -> bool:
        slot = self.index.get(stream_id)
        if slot is None:
            return False
        self._release(stream_id, slot)
        return True

    def expire(self, max_idle: float) -> list[str]:
        cutoff = time.monotonic() - max_idle
        stale = np.flatnonzero(self.touched < cutoff)
        expired: list[str] = []
        for slot in stale:
            stream_id = self.ids[int(slot)]
            if stream_id is None or self._is_busy(stream_id):
                continue
            self._release(stream_id, int(slot))
            expired.append(stream_id)
        return expired

    def snapshot(self) -> dict[str, np.ndarray]:
        slots = np.fromiter(self.index.values(), dtype=np.int64, count=len(self.index))
        now = time.monotonic()
        return {
            "ids": np.array(list(self.index), dtype=object),
            "state": self.state[slots],
            "forecast": self.forecasts[slots],
            "inputs": self.last_inputs[slots],
            "seq": self.seq[slots],
            "ts": self.ts[slots],
            "count": self.count[slots],
            "streak": self.streak[slots],
            # Monotonic clocks restart with the process; keep how long each was idle.
            "idle": now - self.touched[slots],
        }

    def restore(self, arrays: dict[str, np.ndarray]) -> int:
        ids = [str(i) for i in arrays["ids"]]
        if arrays["state"].shape[1:] != (self.layout.state_size,) or arrays["forecast"].shape[
            1:
        ] != (self.layout.forecast_size,):
            raise ValueError("snapshot rows do not match this model's state/forecast size")
        # Keep the most recently used when the snapshot holds more than fits.
        order = np.argsort(arrays["idle"])[: self.capacity]
        now = time.monotonic()
        streak = arrays.get("streak")  # absent in snapshots written before it existed
        for i in order:
            i = int(i)
            slot = self._allocate(ids[i])
            self.state[slot] = arrays["state"][i]
            self.forecasts[slot] = arrays["forecast"][i]
            self.last_inputs[slot] = arrays["inputs"][i]
            self.seq[slot] = arrays["seq"][i]
            self.ts[slot] = arrays["ts"][i]
            self.count[slot] = arrays["count"][i]
            self.streak[slot] = 0 if streak is None else streak[i]
            self.touched[slot] = now - float(arrays["idle"][i])
        return len(order)
