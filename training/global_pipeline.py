"""Evaluate a global model per series and in aggregate, judge it, export one artifact.

Each series is scored exactly as a single-series model would be (its own test split,
origins, MASE scale, and its own baselines: seasonal naive per period, MSTL, AutoETS),
then pooled: the aggregate of a metric is its mean over every forecast of every series
(each series weighted by its number of origins). The quality gate judges the aggregate
and counts the series the model wins on. The artifact is one graph served with one
stream per series; the export streams every series' test split through it one row at
a time and must reproduce the offline forecasts (1e-4).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from training import report, verdict
from training.export import check_parity, export_onnx, manifest, write_manifest
from training.global_train import GlobalTrained
from training.pipeline import evaluation, staged, streamed_parity, training_record
from training.verdict import display

POOLED = ("mae", "mase", "pinball", "coverage_80")


def pool(per_series: list[dict], weights: list[int]) -> dict[str, object]:
    """One method's metrics over all series: means over every forecast."""
    total = float(sum(weights))
    out: dict[str, object] = {
        m: sum(w * float(s[m]) for s, w in zip(per_series, weights, strict=True)) / total
        for m in POOLED
    }
    out["rmse"] = math.sqrt(
        sum(w * float(s["rmse"]) ** 2 for s, w in zip(per_series, weights, strict=True)) / total
    )
    horizon = len(per_series[0]["mae_by_horizon"])
    out["mae_by_horizon"] = [
        sum(w * s["mae_by_horizon"][h] for s, w in zip(per_series, weights, strict=True)) / total
        for h in range(horizon)
    ]
    return out


def evaluate_global(trained: GlobalTrained) -> tuple[dict, list[tuple]]:
    """(aggregate scores with per-series scores and verdict, per-series (y, at, forecast))."""
    per: dict[str, dict] = {}
    arrays = []
    for k, key in enumerate(trained.panel.ids):
        scores, y, at, forecast = evaluation(trained.member(k))
        per[key] = scores
        arrays.append((y, at, forecast))
    weights = [s["origins"] for s in per.values()]
    names = list(next(iter(per.values()))["baselines"])
    result: dict = {
        "origins": sum(weights),
        "origin_every": trained.config.origin_every,
        "mase_scale": None,  # per series: see series.<id>.mase_scale
        "aggregate": "mean over every forecast of every series (series weighted by origins)",
        "model": pool([s["model"] for s in per.values()], weights),
        "baselines": {n: pool([s["baselines"][n] for s in per.values()], weights) for n in names},
        "baseline_seconds": {
            n: round(sum(s["baseline_seconds"][n] for s in per.values()), 1) for n in names
        },
        "series": per,
    }
    judged = verdict.judge(result, "level")
    wins = sum(bool(s["verdict"]["beats_all"]) for s in per.values())
    judged["text"] = f"{judged['text']}; per series: beats every baseline on {wins} of {len(per)}"
    result["verdict"] = judged
    result["series_verdicts"] = {"beats_all": wins, "series": len(per)}
    return result, arrays


def series_table(scores: dict) -> str:
    """Per series: the model's MAE against each baseline's, and the series' verdict."""
    per = scores["series"]
    names = list(scores["baselines"])
    lines = [
        "| series | origins | model MAE | "
        + " | ".join(f"{display(n)} MAE" for n in names)
        + " | cov. 80% | verdict |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in names) + " | ---: | --- |",
    ]
    for key, s in per.items():
        cells = " | ".join(f"{s['baselines'][n]['mae']:.4g}" for n in names)
        lines.append(
            f"| {key} | {s['origins']} | {s['model']['mae']:.4g} | {cells} | "
            f"{s['model']['coverage_80']:.0%} | {s['verdict']['text']} |"
        )
    return "\n".join(lines)


def build_global_artifact(
    trained: GlobalTrained, out_root: Path, require_beat: str | None = None
) -> Path:
    """Evaluate per series, gate on the aggregate, export and verify one artifact."""
    config = trained.config
    scores, arrays = evaluate_global(trained)
    if require_beat:
        verdict.require(scores["verdict"], require_beat, list(scores["baselines"]))
    return staged(
        out_root / config.name / config.version,
        lambda directory: _write(trained, directory, scores, arrays),
    )


def _write(trained: GlobalTrained, directory: Path, scores: dict, arrays: list[tuple]) -> None:
    config, model, panel = trained.config, trained.model, trained.panel
    graph = directory / "model.onnx"
    export_onnx(model, graph)
    first = trained.member(0)
    parity = check_parity(model, graph, first.x[first.split.test :])
    worst = 0.0
    for k, key in enumerate(panel.ids):
        y, at, forecast = arrays[k]
        err, streamed_mae = streamed_parity(
            trained.member(k), graph, scores["series"][key], y, at, forecast
        )
        worst = max(worst, err)
        scores["series"][key]["parity"] = {"streamed_vs_offline": err, "streamed_mae": streamed_mae}
    scores["parity"] = {**parity, "streamed_vs_offline": worst}
    scores["training"] = training_record(trained)

    def span(k: int, lo: int, hi: int) -> list[str]:
        index = panel.series[k].frame.index
        return [str(index[lo]), str(index[hi - 1])]

    content = manifest(
        model,
        graph,
        name=config.name,
        version=config.version,
        frequency=panel.frequency,
        frequency_seconds=panel.series[0].frequency_seconds,
        inputs=list(trained.layout.inputs),
        target=trained.layout.target,
        features=trained.layout.manifest_features(config.mode),
        training=config.to_dict(),
        data={
            "dataset": panel.name,
            "source": panel.source,
            "id_column": panel.id_column,
            "series": {
                key: {
                    "rows": sp.n,
                    "fill": panel.series[k].fill,
                    "split": {
                        "train": span(k, 0, sp.val),
                        "validation": span(k, sp.val, sp.test),
                        "test": span(k, sp.test, sp.n),
                    },
                }
                for k, (key, sp) in enumerate(zip(panel.ids, trained.splits, strict=True))
            },
        },
        evaluation=scores,
        verdict=scores["verdict"],
    )
    write_manifest(directory, content)
    (directory / "report.json").write_text(json.dumps(scores, indent=2) + "\n")
    title = f"{config.name} v{config.version}: {len(panel.ids)} series of {panel.source}"
    notes = [
        f"Verdict (aggregate): {scores['verdict']['text']}.",
        f"State per stream: {model.spec.state_bytes()} bytes (one stream per series; the "
        "per-stream scaling statistics are part of it).",
        *trained.notes,
        f"Trained {trained.epochs_run} epochs in {scores['training']['seconds']} s.",
        f"Every series' test split streamed through the ONNX graph one row at a time: max "
        f"relative forecast difference {worst:.1e}.",
    ]
    path = report.write_markdown(directory, title, scores, notes)
    path.write_text(f"{path.read_text()}\n## Per series\n\n{series_table(scores)}\n")
    y, at, forecast = arrays[0]
    report.plot(
        directory,
        f"{title}: {panel.ids[0]}",
        panel.series[0].frame.index,
        np.asarray(y),
        at,
        forecast,
        tuple(config.quantiles),
    )
