"""What one global model gains over training each series alone (`--compare-per-series`).

Each series is trained alone with the global run's resolved config (the same horizon,
seasons, memory, split, origins and training budget), and the two are compared on every
series' test origins: the model MAE both ways, per series and pooled.
"""

from __future__ import annotations

from pathlib import Path

from training.global_train import GlobalTrained
from training.pipeline import evaluation
from training.train import train


def compare_per_series(trained: GlobalTrained, scores: dict) -> dict[str, object]:
    """Per series: {global MAE, per-series MAE, origins}; and the pooled figures."""
    config = trained.config.replace(baselines=())  # the baselines are already scored
    rows: dict[str, dict[str, float]] = {}
    for k, key in enumerate(trained.panel.ids):
        alone = train(config.replace(name=f"{config.name}-{k}"), trained.member(k).series, False)
        own, *_ = evaluation(alone)
        rows[key] = {
            "origins": own["origins"],
            "global_mae": scores["series"][key]["model"]["mae"],
            "per_series_mae": own["model"]["mae"],
            "per_series_seconds": round(alone.seconds, 1),
            "per_series_epochs": alone.epochs_run,
        }
    total = sum(r["origins"] for r in rows.values())
    pooled = {
        m: sum(r[m] * r["origins"] for r in rows.values()) / total
        for m in ("global_mae", "per_series_mae")
    }
    return {"series": rows, "pooled": pooled, "global_seconds": round(trained.seconds, 1)}


def comparison_table(result: dict) -> str:
    lines = [
        "| series | origins | global model MAE | per-series models MAE | global vs per-series |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    rows = {**result["series"], "pooled (all forecasts)": {**result["pooled"], "origins": ""}}
    for key, r in rows.items():
        change = r["global_mae"] / r["per_series_mae"] - 1.0
        lines.append(
            f"| {key} | {r['origins']} | {r['global_mae']:.4g} | {r['per_series_mae']:.4g} | "
            f"{change:+.1%} |"
        )
    return "\n".join(lines)


def write_comparison(result: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(comparison_table(result) + "\n")
    return path
