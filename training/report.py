"""The human report: a metrics table (report.md) and a plot (forecast.png)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from contract.manifest import median_index

COLUMNS = ("mae", "rmse", "mase", "pinball", "coverage_80")


def table(evaluation: dict) -> str:
    rows = [("model", evaluation["model"]), *list(evaluation["baselines"].items())]
    lines = [
        "| method | " + " | ".join(COLUMNS) + " |",
        "| --- | " + " | ".join("---:" for _ in COLUMNS) + " |",
    ]
    for name, m in rows:
        cells = [f"{m[c]:.4g}" if c in m else "–" for c in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(directory: Path, title: str, evaluation: dict, notes: list[str]) -> Path:
    path = directory / "report.md"
    body = [f"# {title}", "", table(evaluation), "", *[f"- {n}" for n in notes], ""]
    path.write_text("\n".join(body))
    return path


def plot(
    directory: Path,
    title: str,
    times: pd.DatetimeIndex,
    y: np.ndarray,
    at: np.ndarray,
    forecast: np.ndarray,
    quantiles: tuple[float, ...],
    shown: int = 6,
) -> Path:
    """The last `shown` origins' forecasts with their outer quantile band, over actuals."""
    path = directory / "forecast.png"
    horizon = forecast.shape[1]
    picks: list[int] = []
    for t in at[::-1]:  # the latest origins, one horizon apart so the bands don't overlap
        if not picks or picks[-1] - t >= horizon:
            picks.append(int(t))
        if len(picks) == shown:
            break
    picks.reverse()
    lo_t = max(0, picks[0] - horizon)
    hi_t = min(len(y), picks[-1] + horizon + 1)
    fig, ax = plt.subplots(figsize=(11, 4), dpi=100)
    ax.plot(times[lo_t:hi_t], y[lo_t:hi_t], color="black", lw=1, label="actual")
    median = median_index(quantiles)
    for k, t in enumerate(picks):
        row = int(np.flatnonzero(at == t)[0])
        when = times[t + 1 : t + 1 + horizon]
        ax.fill_between(
            when,
            forecast[row, : len(when), 0],
            forecast[row, : len(when), -1],
            color="tab:blue",
            alpha=0.2,
            label=f"{quantiles[0]:.0%}–{quantiles[-1]:.0%} band" if k == 0 else None,
        )
        ax.plot(
            when,
            forecast[row, : len(when), median],
            color="tab:blue",
            lw=1.2,
            label="median forecast" if k == 0 else None,
        )
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
