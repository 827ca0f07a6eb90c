"""One global model trained across the series of a Panel (`--id-column`).

Every series keeps its own chronological split (the same fractions), and statistics come
from the training parts only. The graph scales the inputs twice: by the global scaling
of all training parts, then by the stream's own running statistics, which live in the
state (training/model.py, per-stream scaling), so one artifact serves every series as a
stream. Training windows are drawn from every series in proportion to its length and
never cross from one series into the next; each window starts from its series' running
statistics at that row, exactly what the graph would hold there. The loss of each step
is weighted by 1 / the stream's scale, so big series do not drown the small ones.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from training.config import TrainConfig
from training.data import DataError, Series
from training.features import FeatureLayout, Split, design_matrix, layout_for
from training.model import Forecaster
from training.panel import Panel
from training.resolve import resolve
from training.train import Run, Trained, fit, limit_rows, seed_everything, series_run, spec_for


@dataclass
class GlobalTrained:
    config: TrainConfig
    panel: Panel
    layout: FeatureLayout
    splits: list[Split]
    xs: list[np.ndarray]  # [N_k, F] raw design matrix of each series
    model: Forecaster
    epochs_run: int
    best_val_loss: float
    seconds: float
    notes: tuple[str, ...] = ()

    def member(self, k: int) -> Trained:
        """Series k as a single-series Trained (same model): for evaluation and export."""
        return Trained(
            config=self.config,
            series=self.panel.series[k],
            layout=self.layout,
            split=self.splits[k],
            x=self.xs[k],
            model=self.model,
            epochs_run=self.epochs_run,
            best_val_loss=self.best_val_loss,
            seconds=self.seconds,
            notes=self.notes,
        )


def stream_statistics(model: Forecaster, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the graph's per-stream statistics hold, computed in float64 from the rows.

    Returns the state before each row [N+1, 1+4k] (row p: after rows 0..p-1; the sums
    as float32 high + low pairs, as the graph keeps them) and the target's running std
    at each row [N] (including that row), by the graph's formula.
    """
    spec = model.spec
    k, prior = spec.stream_columns, spec.scaling_prior
    mean = model.x_mean[:k].double().numpy()
    std = model.x_std[:k].double().numpy()
    z = (x[:, :k].astype(np.float64) - mean) / std
    n = len(z)
    sums = np.zeros((n + 1, k))
    squares = np.zeros((n + 1, k))
    sums[1:] = np.cumsum(z, axis=0)
    squares[1:] = np.cumsum(z * z, axis=0)
    state = np.zeros((n + 1, 1 + 4 * k))
    state[:, 0] = np.arange(n + 1)
    for column, values in ((1, sums), (1 + 2 * k, squares)):
        high = values.astype(np.float32)
        state[:, column : column + k] = high
        state[:, column + k : column + 2 * k] = (values - high).astype(np.float32)
    weight = np.arange(1, n + 1)[:, None] + prior
    run_mean = sums[1:] / weight
    run_var = (squares[1:] + prior) / weight - run_mean**2
    run_std = np.sqrt(np.maximum(run_var, 1e-4))
    return state, run_std[:, spec.target_index]


def training_rows(config: TrainConfig, members: list[Series]) -> int | None:
    """Every series' training part together; None when one is too short to split (then
    resolve() refuses the shortest, by name)."""
    try:
        return sum(
            Split.of(len(s.frame), config.validation_fraction, config.test_fraction).val
            for s in members
        )
    except ValueError:
        return None


def train_global(config: TrainConfig, panel: Panel, progress: bool = True) -> GlobalTrained:
    """Train one model across every series of the panel."""
    started = time.monotonic()
    seed_everything(config)
    members = [limit_rows(s, config.max_rows) for s in panel.series]
    # Every length check on the shortest series: whatever fits it fits them all.
    shortest = min(members, key=lambda s: len(s.frame))
    config, notes = resolve(config, shortest, training_rows=training_rows(config, members))
    assert config.horizon is not None
    if config.mode != "level":
        raise DataError(
            "--id-column: a global model of many series is a level model, not --config sp500"
        )
    layout = layout_for(config, members[0])
    xs = [design_matrix(s, layout) for s in members]
    splits = [Split.of(len(x), config.validation_fraction, config.test_fraction) for x in xs]
    train_rows = np.concatenate([x[: sp.val] for x, sp in zip(xs, splits, strict=True)])

    model = Forecaster(spec_for(config, layout, xs[0].shape[1], len(layout.inputs)))
    model.set_scaling(torch.tensor(train_rows.mean(axis=0)), torch.tensor(train_rows.std(axis=0)))
    runs: list[Run] = []
    for x, split in zip(xs, splits, strict=True):
        start_state, scale = stream_statistics(model, x)
        run = series_run(model, x, split, config.horizon, weight=1.0 / scale)
        run.start_state = start_state
        runs.append(run)
    epochs_run, best_loss = fit(model, config, runs, started, progress, notes)
    model.cpu()
    notes.append(
        f"one global model across {len(xs)} series ({panel.id_column}); per-stream scaling "
        f"in the state, its statistics starting from {model.spec.scaling_prior:g} "
        "pseudo-steps of the global scaling"
    )
    return GlobalTrained(
        config=config,
        panel=panel,
        layout=layout,
        splits=splits,
        xs=xs,
        model=model,
        epochs_run=epochs_run,
        best_val_loss=best_loss,
        seconds=time.monotonic() - started,
        notes=tuple(notes),
    )
