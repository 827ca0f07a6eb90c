"""The seasonal anchor's starting weights, fitted by least squares on the training part.

A seasonal-memory model with `seasonal_shift` forecasts, for each horizon step h,

    now + head(state) + sum over seasons L of  gate[L,h] * (seasonal naive_L(h) - now)
                                             + shift[L,h] * (value L steps ago - now)

where gate and shift are linear in the recurrent state (training/model.py). Their biases
are the weights of a seasonal linear forecast: with gate[week] = 1 it is "same time last
week"; with gate[week] = 1 and shift[week] = -1 it is "now plus the change the series
made at this time last week". Rather than starting from one fixed rule, the biases can
start at the least-squares fit of the h-step change on these terms over the training part (the
head and the weights on the state start at zero), so training starts from the best
linear seasonal forecast this memory can express and the recurrent core learns what it
misses. The fitted start and "same time last week" are both candidates; training
starts from the one with the lower validation loss (train.fit), since on some series
the training part's linear fit does not carry to the months after it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from training.model import Forecaster

READOUTS = ("head", "gate", "shift")  # the layers a start sets, all linear in the state
RIDGE = 1e-6  # relative to the mean feature variance: only against an exactly singular fit


Start = tuple[np.ndarray, np.ndarray]  # gate and shift biases, each [seasons, H]


def seasonal_starts(model: Forecaster, runs: list) -> dict[str, Start]:  # list[train.Run]
    """The candidate starts (gate and shift biases, each [seasons, H]): "naive" (same
    time one longest season ago) and "fitted" (least squares on the training part).
    Empty for a model without the shift terms."""
    spec = model.spec
    if model.shift is None or model.gate is None:
        return {}
    seasons, horizon = spec.seasons, spec.horizon
    naive = np.zeros((len(seasons), horizon))
    naive[-1] = 1.0
    starts: dict[str, Start] = {"naive": (naive, np.zeros_like(naive))}
    steps = np.arange(1, horizon + 1)
    backs = [steps - season * np.ceil(steps / season).astype(int) for season in seasons]
    gate, shift = np.zeros_like(naive), np.zeros_like(naive)
    for h in range(horizon):
        rows, targets, weights = [], [], []
        for run in runs:
            z = run.anchor.astype(np.float64)
            # Every season known (as the service sees a stream a season after it began)
            # and the target inside the training part (the mask is 0 elsewhere).
            t = np.arange(spec.memory_length, len(z))
            t = t[run.train_mask[t, h] > 0]
            now = z[t]
            naive_terms = [z[t + back[h]] - now for back in backs]
            level_terms = [z[t - season] - now for season in seasons]
            rows.append(np.stack(naive_terms + level_terms, axis=-1))
            targets.append(run.y[t, h].astype(np.float64))
            weights.append(run.train_mask[t, h].astype(np.float64))
        x, y, w = np.concatenate(rows), np.concatenate(targets), np.concatenate(weights)
        if len(x) <= x.shape[1]:
            return starts  # no full season inside the training part: too few rows to fit
        gram = (x * w[:, None]).T @ x
        ridge = RIDGE * np.trace(gram) / len(gram)
        if not ridge > 0:
            return starts  # a constant training part: nothing to fit
        coef = np.linalg.solve(gram + ridge * np.eye(len(gram)), (x * w[:, None]).T @ y)
        gate[:, h], shift[:, h] = coef[: len(seasons)], coef[len(seasons) :]
    starts["fitted"] = (gate, shift)
    return starts


def set_start(model: Forecaster, gate: np.ndarray, shift: np.ndarray) -> None:
    """The seasonal terms' weights as given, and nothing from the state yet: the head and
    the weights on the recurrent state at zero."""
    assert model.gate is not None and model.shift is not None
    with torch.no_grad():
        for layer, bias in ((model.gate, gate), (model.shift, shift)):
            layer.weight.zero_()
            layer.bias.copy_(torch.from_numpy(bias.reshape(-1)).float())
        model.head.weight.zero_()
        model.head.bias.zero_()


def choose_start(
    model: Forecaster, starts: dict[str, Start], validate: Callable[[], float]
) -> tuple[float, dict[str, Tensor], str] | None:
    """Set each start, score it by `validate` and leave the model at the best one.
    Returns (its validation loss, a copy of its weights, a note), or None without starts."""
    best: tuple[float, dict[str, Tensor], str] | None = None
    for name, weights in starts.items():
        set_start(model, *weights)
        loss = validate()
        if best is None or loss < best[0]:
            best = (loss, {k: v.clone() for k, v in model.state_dict().items()}, name)
    if best is None:
        return None
    loss, state, name = best
    model.load_state_dict(state)
    why = (
        f"the lower validation loss, {loss:.4f}"
        if len(starts) > 1
        else "the training part is too short or constant to fit one"
    )
    return loss, state, f"seasonal memory started from the {name} seasonal forecast ({why})"


def blend_with_start(model: Forecaster, start: dict[str, Tensor], weight: float) -> None:
    """Move the readout layers `weight` of the way back to the start's. The recurrent
    output feeds them linearly, so the median forecast becomes exactly weight x the
    start's + (1 - weight) x the trained model's (the band is calibrated afterwards):
    an average of two forecasts, which on short series carried to the test better than
    either (docs/training.md, "Short series")."""
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if key.split(".")[0] in READOUTS:
                value.mul_(1.0 - weight).add_(start[key].to(value.device), alpha=weight)
