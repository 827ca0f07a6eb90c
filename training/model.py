"""The forecaster: a recurrent core with a multi-horizon, non-crossing quantile head.

The module takes RAW observations and returns RAW-scale quantiles, so the exported graph
is self-contained (docs/artifact.md): scaling, and for prices the log-return maths, live
here. The recurrent state is explicit, batch-first and returned, because the service owns
it; zero state means a new stream.

Two modes:
- "level": forecast the target's level; the head predicts the change from the current
  value in units of the target's training standard deviation.
- "returns": the input is a price; the graph turns it into log returns (keeping the last
  log price in its state), forecasts cumulative log returns and gives prices back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from contract.manifest import median_index


@dataclass(frozen=True)
class ForecasterSpec:
    """The network's shape and mode (the graph's contract is contract.manifest.Manifest)."""

    n_features: int  # F: columns of x, in manifest order
    target_index: int  # the target's column in x
    horizon: int
    quantiles: tuple[float, ...]
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.0
    cell: str = "lstm"
    mode: str = "level"

    @property
    def median_index(self) -> int:
        return median_index(self.quantiles)

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-stream state tensors, in graph order."""
        shapes: dict[str, tuple[int, ...]] = {"h": (self.layers, self.hidden)}
        if self.cell == "lstm":
            shapes["c"] = (self.layers, self.hidden)
        if self.mode == "returns":
            shapes["prev"] = (2,)  # last log price, and 1.0 once a price has been seen
        return shapes


class Forecaster(nn.Module):
    # Buffers, declared so type checkers see tensors rather than "Tensor | Module".
    x_mean: Tensor
    x_std: Tensor
    r_std: Tensor
    spread: Tensor

    def __init__(self, spec: ForecasterSpec) -> None:
        super().__init__()
        if spec.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', not {spec.cell!r}")
        if spec.mode not in ("level", "returns"):
            raise ValueError(f"mode must be 'level' or 'returns', not {spec.mode!r}")
        if list(spec.quantiles) != sorted(spec.quantiles):
            raise ValueError("quantiles must be increasing")
        self.spec = spec
        # Returns mode feeds the return and its magnitude (volatility clusters).
        core_inputs = spec.n_features + (1 if spec.mode == "returns" else 0)
        rnn = nn.LSTM if spec.cell == "lstm" else nn.GRU
        self.rnn = rnn(
            core_inputs,
            spec.hidden,
            num_layers=spec.layers,
            dropout=spec.dropout if spec.layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(spec.hidden, spec.horizon * len(spec.quantiles))
        # Fitted on the training split only (set_scaling); saved with the weights.
        self.register_buffer("x_mean", torch.zeros(spec.n_features))
        self.register_buffer("x_std", torch.ones(spec.n_features))
        self.register_buffer("r_std", torch.ones(()))  # returns mode: daily log-return std
        # Per-horizon widening/narrowing of the band around the median, fitted on the
        # validation split after training (calibrate_spread in train.py).
        self.register_buffer("spread", torch.ones(spec.horizon))

    # -- scaling ------------------------------------------------------------------------
    def set_scaling(self, x_mean: Tensor, x_std: Tensor, r_std: float = 1.0) -> None:
        self.x_mean.copy_(x_mean)
        self.x_std.copy_(torch.clamp(x_std, min=1e-6))
        self.r_std.fill_(max(r_std, 1e-8))

    def zero_state(self, batch: int) -> list[Tensor]:
        device = self.x_mean.device
        shapes = self.spec.state_shapes().values()
        return [torch.zeros(batch, *shape, device=device) for shape in shapes]

    # -- the core: scaled quantiles for every step --------------------------------------
    def steps(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, Tensor, list[Tensor]]:
        """x raw [B,T,F] -> (quantiles in model units [B,T,H,Q], anchor [B,T], new state).

        The anchor is what the head's output is relative to: the scaled target (level
        mode) or the log price (returns mode), at each step.
        """
        spec = self.spec
        z = (x - self.x_mean) / self.x_std
        rnn_state = state[:2] if spec.cell == "lstm" else state[:1]
        if spec.mode == "returns":
            prev = state[-1]
            log_price = torch.log(x[..., spec.target_index])  # [B,T]
            before = torch.cat([prev[:, :1], log_price[:, :-1]], dim=1)
            # The first price a stream ever sends has no predecessor: its return is 0.
            seen = torch.cat([prev[:, 1:2], torch.ones_like(log_price[:, :-1])], dim=1)
            ret = (log_price - before) * seen / self.r_std
            z = torch.cat([z, ret.unsqueeze(-1), ret.abs().unsqueeze(-1)], dim=-1)
            z = torch.cat([z[..., : spec.target_index], z[..., spec.target_index + 1 :]], -1)
            anchor = log_price
            new_prev = torch.stack([log_price[:, -1], torch.ones_like(log_price[:, -1])], -1)
        else:
            anchor = z[..., spec.target_index]
        # State is batch-first at the boundary; the cell wants layers first.
        hidden = [s.transpose(0, 1).contiguous() for s in rnn_state]
        out, new_hidden = self.rnn(z, tuple(hidden) if spec.cell == "lstm" else hidden[0])
        if spec.cell == "gru":
            new_hidden = (new_hidden,)
        raw = self.head(out).view(*out.shape[:2], spec.horizon, len(spec.quantiles))
        new_state = [s.transpose(0, 1) for s in new_hidden]
        if spec.mode == "returns":
            new_state.append(new_prev)
        q = _non_crossing(raw, spec.median_index)
        median = q[..., spec.median_index : spec.median_index + 1]
        q = median + self.spread.unsqueeze(-1) * (q - median)
        return q, anchor, new_state

    def to_raw(self, q: Tensor, anchor: Tensor) -> Tensor:
        """Model units -> raw scale. q [..., H, Q], anchor [...]."""
        a = anchor.unsqueeze(-1).unsqueeze(-1)
        if self.spec.mode == "returns":
            return torch.exp(a + q * self.r_std)
        t = self.spec.target_index
        return (a + q) * self.x_std[t] + self.x_mean[t]

    def forward(self, x: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        """The exported signature: raw forecast after the last step, and the new state."""
        q, anchor, new_state = self.steps(x, list(state))
        return (self.to_raw(q[:, -1], anchor[:, -1]), *new_state)


def _non_crossing(raw: Tensor, median: int) -> Tensor:
    """Quantiles that cannot cross: the median is free, the others step away from it by
    softplus increments. Unrolled over the (few, static) quantiles so the graph is plain."""
    center = raw[..., median]
    columns = [center]
    level = center
    for j in range(median + 1, raw.shape[-1]):
        level = level + nn.functional.softplus(raw[..., j])
        columns.append(level)
    level = center
    for j in range(median - 1, -1, -1):
        level = level - nn.functional.softplus(raw[..., j])
        columns.insert(0, level)
    return torch.stack(columns, dim=-1)
