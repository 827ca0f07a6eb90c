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
import math
import os
import random
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from training.anchor import blend_with_start, choose_start, seasonal_starts
from training.config import TrainConfig
from training.data import Series, load
from training.features import FeatureLayout, Split, design_matrix, layout_for, targets
from training.model import Forecaster, ForecasterSpec
from training.resolve import resolve, window_length


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
    calibrate_spread_over(model, [(x, y, mask)], taus)


def calibrate_spread_over(
    model: Forecaster,
    runs: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    taus: torch.Tensor,
) -> None:
    """calibrate_spread over several series at once: each (x, y, mask) is streamed from
    zero state, and one spread per horizon step minimises their pooled pinball (the mask
    may carry weights, e.g. a global model's per-series scale)."""
    device = runs[0][0].device
    grid = torch.linspace(0.5, 2.0, 76, device=device)
    with torch.no_grad():
        model.spread.fill_(1.0)
        q = torch.cat([model.steps(x[None], model.zero_state(1))[0][0] for x, _, _ in runs])
        y = torch.cat([r[1] for r in runs])
        mask = torch.cat([r[2] for r in runs])
        median = q[..., model.spec.median_index : model.spec.median_index + 1]
        best = torch.ones(model.spec.horizon, device=device)
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


def spec_for(
    config: TrainConfig, layout: FeatureLayout, n_features: int, stream_columns: int = 0
) -> ForecasterSpec:
    """The network a resolved config asks for."""
    assert config.horizon is not None and config.seasons is not None and config.memory
    return ForecasterSpec(
        n_features=n_features,
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
        seasonal_shift=config.memory == "seasonal" and config.anchor == "fitted",
        stream_columns=stream_columns,
        scaling_prior=float(max(config.seasons, default=config.horizon)),
    )


def seed_everything(config: TrainConfig) -> None:
    """Deterministic for a seed; CPU with config.threads torch threads."""
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    torch.set_num_threads(max(1, min(config.threads, os.cpu_count() or 1)))


@dataclass
class Run:
    """One series as training sees it. Masks are 0 outside their split and may carry a
    weight (a global model's 1 / per-stream scale); `start_state` gives the per-stream
    statistics state before each row (None: the model keeps none)."""

    x: np.ndarray  # [N, F] raw
    y: np.ndarray  # [N, H] targets in model units
    train_mask: np.ndarray  # [N, H]
    val_mask: np.ndarray  # [N, H]
    split: Split
    start_state: np.ndarray | None = None  # [N+1, S] stream statistics after 0..N rows
    anchor: np.ndarray | None = None  # [N] the target in model units (seasonal memory)


def series_run(
    model: Forecaster, x: np.ndarray, split: Split, horizon: int, weight: np.ndarray | None = None
) -> Run:
    """Targets in model units; a target that lies past the train split is masked out, so
    training never sees validation or test values."""
    anchor = anchors(model, x)
    y, mask = targets(anchor, horizon)
    if weight is not None:
        mask = mask * weight[:, None].astype(np.float32)
    steps = np.arange(len(x))[:, None] + np.arange(1, horizon + 1)[None, :]
    train_mask = mask * (steps < split.val)
    val_mask = mask * (steps < split.test)
    val_mask[: split.val] = 0.0
    return Run(x, y, train_mask, val_mask, split, anchor=anchor.astype(np.float32))


def seasonal_history(run: Run, start: int, size: int) -> tuple[np.ndarray, float]:
    """The seasonal memory a stream has when it reaches row `start`: its last `size`
    targets (oldest first, zero-padded in front) and how many of them are real."""
    assert run.anchor is not None
    seen = min(start, size)
    history = np.zeros(size, dtype=np.float32)
    history[size - seen :] = run.anchor[start - seen : start]
    return history, float(seen)


def _pieces(runs: list[Run], segments: int, offset: int) -> tuple[int, list[tuple[int, int]]]:
    """Contiguous training windows (series, start) of one length, never crossing a series'
    end: about `segments` of them in all, shared out by each series' training length.
    One series gets exactly `segments` pieces (the single-series recipe)."""
    avail = [max(0, r.split.val - offset) for r in runs]
    seg_len = window_length(sum(avail), min(avail), segments)
    pieces = []
    for k, a in enumerate(avail):
        count = min(a // seg_len, math.ceil(segments * a / sum(avail)))
        pieces += [(k, offset + seg_len * j) for j in range(count)]
    return seg_len, pieces


def fit(
    model: Forecaster,
    config: TrainConfig,
    runs: list[Run],
    started: float,
    progress: bool = True,
    notes: list[str] | None = None,
) -> tuple[int, float]:
    """Carried-state TBPTT over the runs with early stopping on their validation pinball
    (the mean over runs); keeps the best epoch, blends it towards the seasonal start if
    there is one, and calibrates the band. Returns (epochs run, the kept model's
    validation loss before calibration); what it chose goes to `notes` (the report's)."""
    notes = notes if notes is not None else []
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
    # All runs end to end; a piece's rows are base[k] + start + 0..seg_len-1 of one run.
    base = np.cumsum([0] + [len(r.x) for r in runs])[:-1]
    x_t = torch.from_numpy(np.concatenate([r.x for r in runs])).to(device)
    y_t = torch.from_numpy(np.concatenate([r.y for r in runs])).to(device)
    train_mask_t = torch.from_numpy(np.concatenate([r.train_mask for r in runs])).to(device)
    val_masks = [torch.from_numpy(r.val_mask).to(device) for r in runs]
    names = list(model.spec.state_shapes())

    def validate() -> float:
        """Each series streamed in one pass from zero state; the mean validation loss."""
        model.eval()
        with torch.no_grad():
            val_losses = []
            for k, r in enumerate(runs):
                lo, test = int(base[k]), r.split.test
                q, _, _ = model.steps(x_t[None, lo : lo + test], model.zero_state(1))
                val_losses.append(
                    pinball(q[0], y_t[lo : lo + test], val_masks[k][:test], taus).item()
                )
        return float(np.mean(val_losses))

    best_loss, best_state, bad_epochs, epochs_run = float("inf"), None, 0, 0
    # Each seasonal start is a forecast already: training starts from the one that
    # validates better, early stopping keeps it unless an epoch does better, and the
    # export is blended back towards it (below).
    start_state = None
    if config.epochs:
        start = choose_start(model, seasonal_starts(model, runs), validate)
        if start is not None:
            best_loss, start_state, note = start
            best_state = start_state
            notes.append(note)
    bar = tqdm(range(config.epochs), desc=config.name, disable=not progress, unit="epoch")
    for _ in bar:
        epochs_run += 1
        # -- one epoch of carried-state TBPTT -------------------------------------------
        model.train()
        offset = int(np.random.randint(0, config.chunk))  # new window edges each epoch
        seg_len, pieces = _pieces(runs, config.segments, offset)
        starts = np.array([base[k] + s for k, s in pieces])
        index = torch.from_numpy(starts[:, None] + np.arange(seg_len)[None, :]).to(device)
        xb, yb, mb = x_t[index], y_t[index], train_mask_t[index]
        state = model.zero_state(len(pieces))
        if "history" in names:  # each window starts with the memory a stream has there
            known_history = [
                seasonal_history(runs[k], s, model.spec.memory_length) for k, s in pieces
            ]
            state[names.index("history")] = torch.from_numpy(
                np.stack([h for h, _ in known_history])
            ).to(device)
            state[names.index("history_seen")] = torch.tensor(
                [[seen] for _, seen in known_history], dtype=torch.float32, device=device
            )
        if "stream_stats" in names:  # each window starts from its series' statistics
            known = [runs[k].start_state[s] for k, s in pieces]  # type: ignore[index]
            state[names.index("stream_stats")] = torch.from_numpy(
                np.stack(known).astype(np.float32)
            ).to(device)
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

        val_loss = validate()
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
    if start_state is not None and best_state is start_state:
        notes.append("no epoch validated better than the seasonal start: it is the model")
    elif start_state is not None and config.start_weight:
        blend_with_start(model, start_state, config.start_weight)
        best_loss = validate()  # the loss of what is exported
        notes.append(
            f"the forecast's median is {config.start_weight:g} x the seasonal start's "
            f"+ {1 - config.start_weight:g} x the trained model's (--start-weight)"
        )
    model.eval()
    if epochs_run:
        calibrate_spread_over(
            model,
            [
                (
                    x_t[int(b) : int(b) + r.split.test],
                    y_t[int(b) : int(b) + r.split.test],
                    m[: r.split.test],
                )
                for b, r, m in zip(base, runs, val_masks, strict=True)
            ],
            taus,
        )
    return epochs_run, best_loss


def train(config: TrainConfig, series: Series | None = None, progress: bool = True) -> Trained:
    """Train per `config` (its derived fields are resolved from the series first)."""
    started = time.monotonic()
    seed_everything(config)

    # -- data: the split is chronological; every statistic comes from the train part -----
    series = limit_rows(series or load(config.dataset), config.max_rows)
    config, notes = resolve(config, series)
    assert config.horizon is not None and config.seasons is not None and config.memory
    layout = layout_for(config, series)
    x = design_matrix(series, layout)
    split = Split.of(len(x), config.validation_fraction, config.test_fraction)
    train_x = x[: split.val]

    model = Forecaster(spec_for(config, layout, x.shape[1]))
    r_std = 1.0
    if config.mode == "returns":
        prices = train_x[:, layout.target_index].astype(np.float64)
        r_std = float(np.std(np.diff(np.log(prices))))
    model.set_scaling(
        torch.tensor(train_x.mean(axis=0)), torch.tensor(train_x.std(axis=0)), r_std=r_std
    )

    run = series_run(model, x, split, config.horizon)
    epochs_run, best_loss = fit(model, config, [run], started, progress, notes)
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
