"""A real, tiny artifact in seconds: for the service's and the tests' fixtures.

It is the full pipeline (train, evaluate, export, parity, manifest) on a slice of the
real data with a very small network, so what tests load is exactly what production loads.
"""

from __future__ import annotations

from pathlib import Path

from training.config import preset
from training.pipeline import build_artifact
from training.train import train

KINDS = {"sensor": "tiny-sensor", "stock": "tiny-stock", "seasonal": "tiny-seasonal"}


def make_tiny_artifact(out_dir: Path, kind: str = "sensor", name: str | None = None) -> Path:
    """Write out_dir/<name>/1/ and return that folder. kind: "sensor", "stock" or
    "seasonal" (a sensor model with seasonal memory in its state)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, not {kind!r}")
    config = preset(KINDS[kind])
    if name:
        config = config.replace(name=name)
    return build_artifact(train(config, progress=False), Path(out_dir))
