"""Request bodies for a model, built from its manifest: plausible values, one period
apart, with increasing seq, as a real sensor would send them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from contract.timefeatures import add_business_days

# 2014-06-01T00:00:00Z: a period boundary for every frequency we ship.
T0 = 1_401_580_800


def _input_means(version_dir: Path, n_inputs: int) -> list[float]:
    """Training means of the inputs (the graph's x_mean), so values look like real data."""
    try:
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(version_dir / "model.onnx")).graph
        for init in graph.initializer:
            if init.name == "x_mean":
                return [float(v) for v in numpy_helper.to_array(init)[:n_inputs]]
    except Exception:  # onnx missing or a graph without x_mean: any positive value does
        pass
    return [100.0] * n_inputs


@dataclass
class Model:
    name: str
    version_dir: Path
    manifest: dict

    @classmethod
    def load(cls, version_dir: Path) -> Model:
        m = json.loads((version_dir / "manifest.json").read_text())
        return cls(m["name"], version_dir, m)

    @property
    def period(self) -> int:
        # Business-day models step a calendar day at a time here: weekends become gaps
        # the service fills, which is not what we measure, so keep to 86400 and weekdays.
        return int(self.manifest["frequency_seconds"])

    @property
    def business_days(self) -> bool:
        return self.manifest["frequency"] == "B"

    def __post_init__(self) -> None:
        self.means = _input_means(self.version_dir, len(self.manifest["inputs"]))

    def ts(self, k: int) -> int:
        """Timestamp of the k-th period of a stream (k = 0, 1, ...)."""
        if not self.business_days:
            return T0 + k * self.period
        # T0 is a Sunday, so business day 0 is the Monday after it.
        return int(add_business_days(T0, k))

    def values(self, k: int) -> str:
        wobble = 1.0 + 0.05 * math.sin(k / 7.0)
        return ",".join(f"{m * wobble:.3f}" for m in self.means)

    def obs(self, k: int) -> str:
        return f'{{"ts":{self.ts(k)},"seq":{k},"values":[{self.values(k)}]}}'

    def one(self, k: int) -> bytes:
        """Body with the k-th observation of a stream."""
        return f'{{"observations":[{self.obs(k)}]}}'.encode()

    def history(self, start: int, count: int) -> bytes:
        return (
            '{"observations":[' + ",".join(self.obs(k) for k in range(start, start + count)) + "]}"
        ).encode()

    def multi(self, stream_ids: list[str], k: int, detail: str = "full") -> bytes:
        """Multi-stream body: the k-th observation of every stream; `detail` is how much
        forecast each answer carries (full, median or none)."""
        o = self.obs(k)
        head = '{"streams":[' if detail == "full" else f'{{"forecast":"{detail}","streams":['
        return (
            head
            + ",".join(f'{{"stream_id":"{s}","observations":[{o}]}}' for s in stream_ids)
            + "]}"
        ).encode()

    def ws_message(self, stream_id: str, k: int, msg_id: int) -> str:
        return f'{{"stream_id":"{stream_id}","id":{msg_id},"observations":[{self.obs(k)}]}}'

    def stream_path(self, stream_id: str) -> str:
        return f"/v1/models/{self.name}/streams/{stream_id}/observations"


def find_models(models_dir: Path) -> list[Model]:
    """The highest version of every model under models_dir."""
    found: dict[str, Path] = {}
    for manifest in sorted(models_dir.glob("*/*/manifest.json")):
        d = manifest.parent
        best = found.get(d.parent.name)
        if best is None or _vkey(d.name) > _vkey(best.name):
            found[d.parent.name] = d
    return [Model.load(d) for _, d in sorted(found.items())]


def _vkey(v: str) -> tuple[int, str]:
    return (int(v), "") if v.isdigit() else (-1, v)
