"""The floor: the raw ONNX Runtime step of a model, one thread, no HTTP, no Python
bookkeeping beyond session.run."""

from __future__ import annotations

import time

import numpy as np
import onnxruntime as ort

from bench.payloads import Model


def session(model: Model, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(
        str(model.version_dir / model.manifest["graph"]["file"]),
        sess_options=opts,
        providers=["CPUExecutionProvider"],
    )


def feed(model: Model, batch: int, steps: int = 1) -> dict[str, np.ndarray]:
    m = model.manifest
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(1.0, 0.1, size=(batch, steps, len(m["features"])))).astype(np.float32)
    x[..., : len(model.means)] *= np.asarray(model.means, dtype=np.float32)
    out = {m["graph"]["input"]: x}
    for s in m["state"]:
        out[s["input"]] = np.zeros([batch, *s["shape"]], dtype=np.float32)
    return out


def time_call(sess: ort.InferenceSession, inputs: dict[str, np.ndarray], budget_s: float) -> float:
    """Median seconds per call over ~budget_s of calls (median: the machine is shared)."""
    sess.run(None, inputs)  # warm-up: first call allocates
    t0 = time.perf_counter()
    sess.run(None, inputs)
    once = max(time.perf_counter() - t0, 1e-6)
    # Time in groups so timer overhead is negligible even at B=1.
    group = max(1, int(0.005 / once))
    groups = max(5, int(budget_s / (once * group)))
    samples = []
    for _ in range(groups):
        t0 = time.perf_counter()
        for _ in range(group):
            sess.run(None, inputs)
        samples.append((time.perf_counter() - t0) / group)
    return float(np.median(samples))


def measure(model: Model, batches: list[int], budget_s: float) -> list[dict[str, float | int]]:
    sess = session(model)
    rows: list[dict[str, float | int]] = []
    for b in batches:
        per_call = time_call(sess, feed(model, b), budget_s)
        rows.append(
            {
                "batch": b,
                "us_per_call": round(per_call * 1e6, 2),
                "us_per_stream_step": round(per_call * 1e6 / b, 3),
                "steps_per_s": round(b / per_call, 1),
            }
        )
    return rows


def sequence_us(model: Model, steps: int, budget_s: float) -> float:
    """One call over a window of `steps` at B=1 (what a stateless service pays)."""
    return round(time_call(session(model), feed(model, 1, steps), budget_s) * 1e6, 1)
