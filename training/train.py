"""Train one forecaster, top to bottom.

Truncated back-propagation through time that CARRIES the state: the training split is cut
into `segments` contiguous pieces run side by side as a batch; each piece is walked in
`chunk`-step windows, and the state flows from one window into the next (detached, not
reset). The loss is the multi-horizon pinball loss at EVERY step. So the model learns to
forecast from a state that has run for a long time, which is how the service uses it.

Validation streams the whole train+validation series through the model in one pass from
zero state, exactly as the service would see it, and scores the validation steps.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from training.config import TrainConfig
from training.data import Series, load
from training.features import FeatureLayout, Split, design_matrix, layout_for, targets
from training.model import Forecaster, ForecasterSpec
from training.resolve import resolve


@dataclass
class Trained:
    config: TrainConfig
    series: Series
    layout: FeatureLayout
    split: Split
    x: np.ndarray  # [N, F] raw design matrix of the whole series
    model: Forecaster
    epochs_run: int
    best_val_loss: float
    seconds: float
    notes: tuple[str, ...] = ()  # what resolve() derived or dropped, for the report


def pinball(q: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, taus: torch.Tensor):
    """Mean pinball loss. q [..., H, Q], y and mask [..., H]."""
    diff = y.unsqueeze(-1) - q
    loss = torch.maximum(taus * diff, (taus - 1.0) * diff) * mask.unsqueeze(-1)
    return loss.sum() / (mask.sum() * len(taus)).clamp(min=1.0)


def anchors(model: Forecaster, x: np.ndarray) -> np.ndarray:
    """The per-step anchor in model units, as Forecaster.steps computes it."""
    t = model.spec.target_index
    if model.spec.mode == "returns":
        return np.log(x[:, t].astype(np.float64)) / float(model.r_std)
    return (x[:, t] - float(model.x_mean[t])) / float(model.x_std[t])


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def calibrate_spread(
    model: Forecaster, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, taus: torch.Tensor
) -> None:
    """Scale each horizon step's band around the median to minimise validation pinball.

    A network trained on pinball loss tends to be over- or under-confident out of
    sample; this one-parameter-per-step recalibration on held-out data fixes the width
    without moving the median (so MAE is unchanged).
    """
    grid = torch.linspace(0.5, 2.0, 76, device=x.device)
    with torch.no_grad():
        model.spread.fill_(1.0)
        q, _, _ = model.steps(x[None], model.zero_state(1))
        q = q[0]
        median = q[..., model.spec.median_index : model.spec.median_index + 1]
        best = torch.ones(model.spec.horizon, device=x.device)
        for h in range(model.spec.horizon):
            losses = [
                pinball(median[:, h] + s * (q[:, h] - median[:, h]), y[:, h], mask[:, h], taus)
                for s in grid
            ]
            best[h] = grid[int(torch.stack(losses).argmin())]
        model.spread.copy_(best)


def limit_rows(series: Series, max_rows: int | None) -> Series:
    """The last max_rows rows (tests train on tiny slices of the real data)."""
    if not max_rows:
        return series
    return dataclasses.replace(series, frame=series.frame.iloc[-max_rows:])


def train(config: TrainConfig, series: Series | None = None, progress: bool = True) -> Trained:
    """Train per `config` (its derived fields are resolved from the series first)."""
    started = time.monotonic()
    # -- determinism ---------------------------------------------------------------------
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(max(1, min(config.threads, os.cpu_count() or 1)))

    # -- data: the split is chronological; every statistic comes from the train part -----
    series = limit_rows(series or load(config.dataset), config.max_rows)
    config, notes = resolve(config, series)
    assert config.horizon is not None and config.seasons is not None and config.memory
    layout = layout_for(config, series)
    x = design_matrix(series, layout)
    split = Split.of(len(x), config.validation_fraction, config.test_fraction)
    train_x = x[: split.val]

    spec = ForecasterSpec(
        n_features=x.shape[1],
        target_index=layout.target_index,
        horizon=config.horizon,
        quantiles=tuple(config.quantiles),
        hidden=config.hidden,
        layers=config.layers,
        dropout=config.dropout,
        cell=config.cell,
        mode=config.mode,
        seasons=tuple(config.seasons) if config.memory == "seasonal" else (),
        memory=config.memory,
    )
    model = Forecaster(spec)
    r_std = 1.0
    if config.mode == "returns":
        prices = train_x[:, layout.target_index].astype(np.float64)
        r_std = float(np.std(np.diff(np.log(prices))))
    model.set_scaling(
        torch.tensor(train_x.mean(axis=0)), torch.tensor(train_x.std(axis=0)), r_std=r_std
    )

    # Targets in model units; a target that lies past the train split is masked out, so
    # training never sees validation or test values.
    y, mask = targets(anchors(model, x), config.horizon)
    steps = np.arange(len(x))[:, None] + np.arange(1, config.horizon + 1)[None, :]
    train_mask = mask * (steps < split.val)
    val_mask = mask * (steps < split.test)
    val_mask[: split.val] = 0.0

    device = pick_device(config.device)
    model.to(device)
    taus = torch.tensor(config.quantiles, dtype=torch.float32, device=device)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    # Halve the step size when validation stalls; early stopping ends it after `patience`.
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimiser, factor=0.5, patience=max(1, config.patience // 3)
    )
    x_t, y_t = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    train_mask_t = torch.from_numpy(train_mask).to(device)
    val_mask_t = torch.from_numpy(val_mask).to(device)

    best_loss, best_state, bad_epochs, epochs_run = float("inf"), None, 0, 0
    bar = tqdm(range(config.epochs), desc=config.name, disable=not progress, unit="epoch")
    for _ in bar:
        epochs_run += 1
        # -- one epoch of carried-state TBPTT -------------------------------------------
        model.train()
        offset = int(np.random.randint(0, config.chunk))  # new window edges each epoch
        seg_len = (split.val - offset) // config.segments
        starts = offset + seg_len * np.arange(config.segments)
        index = torch.from_numpy(starts[:, None] + np.arange(seg_len)[None, :]).to(device)
        xb, yb, mb = x_t[index], y_t[index], train_mask_t[index]
        state = model.zero_state(config.segments)
        losses = []
        for lo in range(0, seg_len, config.chunk):
            hi = min(lo + config.chunk, seg_len)
            q, _, state = model.steps(xb[:, lo:hi], state)
            loss = pinball(q, yb[:, lo:hi], mb[:, lo:hi], taus)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimiser.step()
            state = [s.detach() for s in state]
            losses.append(loss.item())

        # -- validation: one streamed pass from zero state ------------------------------
        model.eval()
        with torch.no_grad():
            q, _, _ = model.steps(x_t[None, : split.test], model.zero_state(1))
            val_loss = pinball(q[0], y_t[: split.test], val_mask_t[: split.test], taus).item()
        scheduler.step(val_loss)
        if val_loss < best_loss - 1e-5:
            best_loss, bad_epochs = val_loss, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            bad_epochs += 1
        elapsed = time.monotonic() - started
        bar.set_postfix(
            train=f"{np.mean(losses):.4f}",
            val=f"{val_loss:.4f}",
            best=f"{best_loss:.4f}",
            left=f"{max(0.0, config.max_train_seconds - elapsed):.0f}s",
        )
        if bad_epochs >= config.patience or elapsed > config.max_train_seconds:
            break
    bar.close()

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if epochs_run:
        calibrate_spread(
            model, x_t[: split.test], y_t[: split.test], val_mask_t[: split.test], taus
        )
    model.cpu()  # evaluation and export run on the CPU, like the service
    return Trained(
        config=config,
        series=series,
        layout=layout,
        split=split,
        x=x,
        model=model,
        epochs_run=epochs_run,
        best_val_loss=best_loss,
        seconds=time.monotonic() - started,
        notes=tuple(notes),
    )
