"""Evaluate a trained model against its baselines, export it, prove the export, write it.

The last proof is the one that matters for streaming: the whole test split is streamed
through the exported graph one observation at a time (after priming on train+validation
in one sequence call), and the forecasts must reproduce the offline evaluation.

Nothing is written until the evaluation (and the quality gate, when one is required) has
passed; the artifact is assembled in a hidden staging folder and moved into place at the
end, so a failed run never leaves a partial or empty artifact behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from training import baselines, evaluate, report, verdict
from training.export import (
    PARITY_TOLERANCE,
    ExportError,
    check_parity,
    export_onnx,
    forecast_scale,
    manifest,
    parity_error,
    run_graph,
    session,
    write_manifest,
)
from training.resolve import baseline_lag
from training.train import Trained

if TYPE_CHECKING:
    from training.global_train import GlobalTrained


def evaluation(trained: Trained) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """Scores of the model and every configured baseline on the same origins."""
    config, split = trained.config, trained.split
    assert config.horizon is not None and config.origin_every is not None
    assert config.season is not None
    y = trained.x[:, trained.layout.target_index].astype(np.float64)
    at = evaluate.origins(split, config.horizon, config.origin_every)
    truth = evaluate.actuals(y, at, config.horizon)
    scale = evaluate.mase_scale(y[: split.val], config.season)
    quantiles = tuple(config.quantiles)

    all_forecasts = evaluate.model_forecasts(trained.model, trained.x)
    forecast = all_forecasts[at]
    result: dict = {
        "origins": len(at),
        "origin_every": config.origin_every,
        "mase_scale": scale,
        "model": evaluate.metrics(forecast, truth, quantiles, scale),
        "baselines": {},
        "baseline_seconds": {},
    }
    # Every test step as an origin too: the figure the service's live accuracy tracks.
    every = evaluate.origins(split, config.horizon, 1)
    result["model_every_step"] = evaluate.metrics(
        all_forecasts[every], evaluate.actuals(y, every, config.horizon), quantiles, scale
    )
    frequency = trained.series.frequency
    for name in config.baselines or ():
        started = time.monotonic()
        naive = name == "naive" or name.startswith("seasonal_naive_")
        fc = baselines.run(
            name,
            y,
            at,
            config.horizon,
            quantiles,
            split,
            lag=baseline_lag(name, frequency) if naive else 0,
            seasons=tuple(config.seasons or ()),
            window=config.baseline_window or 0,
            log=config.mode == "returns",
        )
        result["baselines"][name] = evaluate.metrics(fc, truth, quantiles, scale)
        result["baseline_seconds"][name] = round(time.monotonic() - started, 1)
    result["verdict"] = verdict.judge(result, config.mode)
    return result, y, at, forecast


def streamed_forecasts(trained: Trained, graph: Path, at: np.ndarray) -> np.ndarray:
    """Prime on every row before the first origin in ONE sequence call (the service's
    history priming), then step one row at a time, reading the forecast at each origin."""
    model, x = trained.model, trained.x
    sess = session(graph)
    state = [s.numpy() for s in model.zero_state(1)]
    first = int(at[0])
    if first > 0:
        _, state = run_graph(sess, model, x[None, :first], state)
    wanted = {int(t): k for k, t in enumerate(at)}
    out = np.empty((len(at), model.spec.horizon, len(model.spec.quantiles)))
    for t in range(first, int(at[-1]) + 1):
        fc, state = run_graph(sess, model, x[None, t : t + 1], state)
        if t in wanted:
            out[wanted[t]] = fc[0]
    return out


def streamed_parity(
    trained: Trained,
    graph: Path,
    scores: dict,
    y: np.ndarray,
    at: np.ndarray,
    forecast: np.ndarray,
) -> tuple[float, float]:
    """Stream the test split through the graph one row at a time: (max relative
    difference from the offline forecasts, streamed MAE). Raises ExportError past 1e-4."""
    assert trained.config.horizon is not None
    streamed = streamed_forecasts(trained, graph, at)
    stream_err = parity_error(streamed, forecast, forecast_scale(trained.model))
    truth = evaluate.actuals(y, at, trained.config.horizon)
    streamed_scores = evaluate.metrics(
        streamed, truth, tuple(trained.config.quantiles), scores["mase_scale"]
    )
    if stream_err > PARITY_TOLERANCE:
        raise ExportError(f"streamed forecasts differ from offline: {stream_err:.2e}")
    return stream_err, float(streamed_scores["mae"])  # type: ignore[arg-type]


def training_record(trained: Trained | GlobalTrained) -> dict[str, object]:
    """How the weights were made, for the report and the manifest."""
    return {
        "seconds": round(trained.seconds, 1),
        "epochs": trained.epochs_run,
        "best_validation_pinball": trained.best_val_loss,
        "notes": list(trained.notes),
    }


def build_artifact(trained: Trained, out_root: Path, require_beat: str | None = None) -> Path:
    """Evaluate, export, verify and write models/<name>/<version>/. Returns that folder.

    require_beat: a baseline name (or "all") the model must beat on the verdict's metric;
    if it does not, QualityGateError is raised before anything is written.
    """
    config = trained.config
    scores, y, at, forecast = evaluation(trained)
    if require_beat:
        verdict.require(scores["verdict"], require_beat, list(scores["baselines"]))

    return staged(
        out_root / config.name / config.version,
        lambda directory: _write_artifact(trained, directory, scores, y, at, forecast),
    )


def staged(final: Path, write: Callable[[Path], None]) -> Path:
    """Run `write` into a hidden staging folder beside `final`, then move it into place;
    on any failure remove what was staged, and the folders this run made for it while
    they are empty (a concurrent run may have put its artifact in one)."""
    staging = final.parent / f".{final.name}.staging-{os.getpid()}"
    # The folders this run creates (e.g. a new --out root), innermost first.
    created: list[Path] = []
    for folder in (final.parent, *final.parent.parents):
        if folder.exists():
            break
        created.append(folder)
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        write(staging)
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            final.rename(old)
            staging.rename(final)
            shutil.rmtree(old)
        else:
            staging.rename(final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        # Only while empty: a concurrent run may have put its artifact in one of them.
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return final


def _write_artifact(
    trained: Trained,
    directory: Path,
    scores: dict,
    y: np.ndarray,
    at: np.ndarray,
    forecast: np.ndarray,
) -> None:
    config = trained.config
    assert config.horizon is not None
    graph = directory / "model.onnx"
    export_onnx(trained.model, graph)
    parity = check_parity(trained.model, graph, trained.x[trained.split.test :])

    stream_err, streamed_mae = streamed_parity(trained, graph, scores, y, at, forecast)
    scores["parity"] = {
        **parity,
        "streamed_vs_offline": stream_err,
        "streamed_mae": streamed_mae,
        "offline_mae": scores["model"]["mae"],
    }
    scores["training"] = training_record(trained)

    series, split = trained.series, trained.split
    index = series.frame.index
    span = lambda lo, hi: [str(index[lo]), str(index[hi - 1])]  # noqa: E731
    content = manifest(
        trained.model,
        graph,
        name=config.name,
        version=config.version,
        frequency=series.frequency,
        frequency_seconds=series.frequency_seconds,
        inputs=list(trained.layout.inputs),
        target=trained.layout.target,
        features=trained.layout.manifest_features(config.mode),
        training=config.to_dict(),
        data={
            "dataset": series.name,
            "source": series.source,
            "rows": split.n,
            "fill": series.fill,
            "split": {
                "train": span(0, split.val),
                "validation": span(split.val, split.test),
                "test": span(split.test, split.n),
            },
        },
        evaluation=scores,
        verdict=scores["verdict"],
    )
    write_manifest(directory, content)
    (directory / "report.json").write_text(json.dumps(scores, indent=2) + "\n")
    title = f"{config.name} v{config.version}: {series.source}, test split"
    report.write_markdown(directory, title, scores, _notes(scores, trained))
    report.plot(directory, title, index, y, at, forecast, tuple(config.quantiles))


def _notes(scores: dict, trained: Trained) -> list[str]:
    m = scores["model"]
    spec = trained.model.spec
    fill = trained.series.fill
    notes = [
        f"Verdict: {scores['verdict']['text']}.",
        f"State per stream: {spec.state_bytes()} bytes (memory: {spec.memory}"
        + (f", seasons {list(spec.seasons)} steps" if spec.seasons else "")
        + ").",
        f"Gaps and missing values: --fill {fill.get('policy', 'none')}"
        + (f"; filled {fill['filled_values']}" if fill.get("filled_values") else "")
        + (f"; trimmed {fill['trimmed_rows']} edge rows" if fill.get("trimmed_rows") else "")
        + (
            f"; dropped {fill['dropped_before_long_gap']} rows before the last long gap"
            if fill.get("dropped_before_long_gap")
            else ""
        )
        + ".",
        *trained.notes,
        f"{scores['origins']} rolling origins, every {scores['origin_every']} step(s) of the "
        f"test split; horizon {trained.config.horizon}; same origins for every method.",
        f"Model MAE over every test step as origin: {scores['model_every_step']['mae']:.4g}.",
        f"Trained {scores['training']['epochs']} epochs in {scores['training']['seconds']} s.",
        f"Streaming the test split through the ONNX graph one step at a time: MAE "
        f"{scores['parity']['streamed_mae']:.6g} vs offline {m['mae']:.6g} "
        f"(max relative forecast difference {scores['parity']['streamed_vs_offline']:.1e}).",
    ]
    for name, b in scores["baselines"].items():
        notes.append(
            f"MAE ratio model / {name}: {_ratio(m['mae'], b['mae'])}; "
            f"pinball ratio: {_ratio(m['pinball'], b['pinball'])}"
        )
    return notes


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b > 0 else "n/a (baseline error is 0)"
