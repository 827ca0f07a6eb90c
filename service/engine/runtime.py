"""The ONNX Runtime session of one model version — the only place that blocks.

Everything else in the service runs on the event loop; ``Runtime.run_async`` hands a
large ORT call to this model's own worker thread (ORT releases the GIL while it
computes) and runs a small one inline on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnxruntime as ort

from contract.manifest import StateSlot

log = logging.getLogger(__name__)


def choose_providers(requested: list[str]) -> list[str]:
    """Requested providers that this onnxruntime build has, CPU always last as fallback."""
    available = set(ort.get_available_providers())
    chosen = [p for p in requested if p in available]
    missing = [p for p in requested if p not in available]
    if missing:
        log.warning("execution providers %s not available here; using %s", missing, chosen)
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    return chosen


class Runtime:
    """One graph: x plus flat per-stream state in, forecast plus new flat state out."""

    def __init__(
        self,
        model_bytes: bytes,
        providers: list[str],
        intra_op_threads: int,
        *,
        graph_input: str,
        graph_output: str,
        state: Sequence[StateSlot],
        label: str,
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            model_bytes, sess_options=options, providers=choose_providers(providers)
        )
        self.provider: str = self.session.get_providers()[0]
        self._graph_input = graph_input
        self._state = list(state)
        self._output_names = [graph_output] + [s.output for s in self._state]
        # One thread per session: ORT calls of one model never overlap, which keeps
        # intra_op_num_threads meaningful and the batcher's ordering simple.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ort-{label}")
        # Calls of at most this many rows x steps run inline (Settings.inline_max_rows_steps).
        self.inline_max = 16

    def io_names(self) -> tuple[dict[str, list[object]], dict[str, list[object]]]:
        inputs = {i.name: list(i.shape) for i in self.session.get_inputs()}
        outputs = {o.name: list(o.shape) for o in self.session.get_outputs()}
        return inputs, outputs

    def run(self, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """x [B, T, F], state [B, S] (flat) -> forecast [B, H, Q], new state [B, S], seconds."""
        batch = x.shape[0]
        feed: dict[str, np.ndarray] = {self._graph_input: x}
        for entry in self._state:
            part = state[:, entry.offset : entry.offset + entry.size]
            feed[entry.input] = np.ascontiguousarray(part).reshape(batch, *entry.shape)
        started = time.perf_counter()
        outputs = self.session.run(self._output_names, feed)
        elapsed = time.perf_counter() - started
        forecast = np.asarray(outputs[0], dtype=np.float32)
        if len(outputs) == 2:
            new_state = np.asarray(outputs[1], dtype=np.float32).reshape(batch, -1)
        else:
            new_state = np.concatenate(
                [np.asarray(o, dtype=np.float32).reshape(batch, -1) for o in outputs[1:]], axis=1
            )
        return forecast, new_state, elapsed

    async def run_async(
        self, x: np.ndarray, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, float]:
        # Small calls run inline: the thread hop (executor submit, worker wake-up, GIL
        # hand-off, call_soon_threadsafe back) costs as much as a small step and buys no
        # parallelism. ORT releases the GIL, so large calls still go to the thread: the
        # loop parses the next requests meanwhile.
        if x.shape[0] * x.shape[1] <= self.inline_max:
            return self.run(x, state)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run, x, state)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
