"""What a user would build instead: a stateless FastAPI + PyTorch forecaster.

It keeps the last `window` observations of each stream in a dict and re-runs the whole
window through the LSTM from zero state on every request: the usual "sliding window"
service. Same request and answer shapes as the real service's one-stream endpoint, same
uvicorn settings (uvloop, httptools, one worker, no access log), one torch thread.

Weights: the training checkpoint runs/<name>.pt when it exists, else random weights of
the same shape (H, L, F, horizon, quantiles) -- an honest stand-in for COST, not for
accuracy; /healthz says which. Run:
`python -m bench.naive_app --port 8002 --models-dir models --window 168`.
"""

from __future__ import annotations

import argparse
import json
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from bench import serve
from contract.timefeatures import time_feature
from training.model import Forecaster, ForecasterSpec


class Observation(BaseModel):
    ts: str | float
    seq: int | None = None
    values: list[float] | None = None
    value: float | None = None


class ObservationsIn(BaseModel):
    observations: list[Observation]
    reset: bool = False


def _seconds(ts: str | float) -> float:
    if isinstance(ts, int | float):
        return float(ts)
    t = datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


class NaiveModel:
    def __init__(self, version_dir: Path, runs_dir: Path) -> None:
        self.manifest = m = json.loads((version_dir / "manifest.json").read_text())
        cfg = m["training"]
        spec = ForecasterSpec(
            n_features=len(m["features"]),
            target_index=m["target_index"],
            horizon=m["horizon"],
            quantiles=tuple(m["quantiles"]),
            hidden=cfg["hidden"],
            layers=cfg["layers"],
            cell=cfg["cell"],
            mode=cfg["mode"],
        )
        self.model = Forecaster(spec).eval()
        checkpoint = runs_dir / f"{m['name']}.pt"
        self.weights = "random (same shape; cost stand-in)"
        if checkpoint.exists():
            try:
                saved = torch.load(checkpoint, weights_only=True)
                self.model.load_state_dict(saved["weights"])
                self.weights = f"checkpoint {checkpoint}"
            except (RuntimeError, KeyError):
                pass
        self.step = timedelta(seconds=m["frequency_seconds"])

    def row(self, seconds: float, values: list[float]) -> list[float]:
        out = []
        for f in self.manifest["features"]:
            if f["source"] == "input":
                out.append(values[self.manifest["inputs"].index(f["name"])])
            else:
                out.append(time_feature(seconds, f["period_seconds"], f["function"]))
        return out

    def forecast(self, window: list[list[float]], last_seconds: float) -> dict[str, Any]:
        x = torch.tensor([window], dtype=torch.float32)
        with torch.inference_mode():
            out = self.model(x, *self.model.zero_state(1))[0][0]
        start = datetime.fromtimestamp(last_seconds, UTC)
        return {
            "ts": [
                (start + self.step * (k + 1)).strftime("%Y-%m-%dT%H:%M:%SZ")
                for k in range(out.shape[0])
            ],
            "quantiles": self.manifest["quantiles"],
            "values": out.tolist(),
        }


def create_app(models_dir: Path, runs_dir: Path, window: int) -> FastAPI:
    models: dict[str, NaiveModel] = {}
    for manifest in sorted(models_dir.glob("*/*/manifest.json")):
        nm = NaiveModel(manifest.parent, runs_dir)
        models[nm.manifest["name"]] = nm
    windows: dict[tuple[str, str], deque[list[float]]] = {}
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "weights": {k: v.weights for k, v in models.items()}}

    @app.post("/v1/models/{model}/streams/{stream_id}/observations")
    def observe(model: str, stream_id: str, body: ObservationsIn) -> dict[str, Any]:
        # A plain def: FastAPI runs it in its thread pool, as most users' torch code runs.
        nm = models.get(model)
        if nm is None:
            raise HTTPException(404, "unknown model")
        key = (model, stream_id)
        buf = windows.get(key)
        if buf is None or body.reset:
            buf = windows[key] = deque(maxlen=window)
        for o in body.observations:
            vals = o.values if o.values is not None else [o.value or 0.0]
            buf.append(nm.row(_seconds(o.ts), vals))
        last = body.observations[-1]
        return {
            "model": model,
            "stream_id": stream_id,
            "seq": last.seq,
            "ts": last.ts,
            "forecast": nm.forecast(list(buf), _seconds(last.ts)),
        }

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8002)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--window", type=int, default=168)
    args = parser.parse_args()
    torch.set_num_threads(1)
    serve.run(create_app(args.models_dir, args.runs_dir, args.window), args.port)


if __name__ == "__main__":
    main()
