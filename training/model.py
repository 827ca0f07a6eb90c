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

Seasonal memory (memory="seasonal", level mode): the state also keeps the last S scaled
target values (S = the longest season) and how many of them are real. For every season
L the graph looks up the seasonal naive forecast for each horizon step (the value L
steps before it, or a whole number of seasons before when the horizon is longer) and
the head adds a learned, state-dependent multiple of (seasonal naive - current value),
and with seasonal_shift one of (value L steps ago - current value): a correction on top
of "same time last week" or "now + last week's change" that can also lean on the
recurrent forecast (training/anchor.py fits where these start). The current seasonal
differences are inputs to the cell too. The buffer is
shifted by concatenation and a gather of the last S, so a step costs a copy of S floats, and T steps
at once give exactly what T single steps give. Until a stream has seen L values, the
season-L terms are zero (the value is unknown, not zero).

Per-stream scaling (stream_scaling=True, level mode; a global model of many series): after
the global training-split scaling, each client input is scaled again by the stream's OWN
running mean and standard deviation, kept in one more state tensor (count, sums and sums
of squares since the stream began). The statistics start from a prior of `scaling_prior`
pseudo-steps at the global scaling (mean 0, variance 1), so a new stream is scaled like
the training data and moves to its own scale as it is seen. The head forecasts in the
stream's units and the graph multiplies back, so one graph serves series of any size and
the service needs nothing beyond the declared state.
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
    seasons: tuple[int, ...] = ()  # seasonal memory: the seasons it looks back by
    memory: str = "none"  # "seasonal": keep the last max(seasons) target values as state
    # Seasonal memory only: the forecast also takes a learned multiple of each season's
    # (value one season ago - current value), so it can be "now + the change the profile
    # made a season ago", not only "the value a season ago" (training/anchor.py).
    seasonal_shift: bool = False
    # Per-stream scaling of the first `stream_columns` columns of x (the client inputs) by
    # running statistics in the state; 0 = off.
    stream_columns: int = 0
    scaling_prior: float = 168.0  # pseudo-steps of the global scaling the statistics start at

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
        if self.memory == "seasonal":
            shapes["history"] = (self.memory_length,)  # last S scaled targets, oldest first
            shapes["history_seen"] = (1,)  # how many of them are real (at most S)
        if self.stream_columns:
            # count, then the sums and the sums of squares of each globally scaled input,
            # each as a (high, low) float32 pair
            shapes["stream_stats"] = (1 + 4 * self.stream_columns,)
        return shapes

    @property
    def memory_length(self) -> int:
        return max(self.seasons) if self.memory == "seasonal" else 0

    def state_bytes(self) -> int:
        """Bytes of float32 state one stream carries."""
        return 4 * sum(_prod(shape) for shape in self.state_shapes().values())


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


class Forecaster(nn.Module):
    # Buffers, declared so type checkers see tensors rather than "Tensor | Module".
    x_mean: Tensor
    x_std: Tensor
    r_std: Tensor
    spread: Tensor
    season_back: Tensor
    memory_keep: Tensor

    def __init__(self, spec: ForecasterSpec) -> None:
        super().__init__()
        if spec.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru', not {spec.cell!r}")
        if spec.mode not in ("level", "returns"):
            raise ValueError(f"mode must be 'level' or 'returns', not {spec.mode!r}")
        if spec.memory not in ("none", "seasonal"):
            raise ValueError(f"memory must be 'none' or 'seasonal', not {spec.memory!r}")
        if spec.memory == "seasonal" and (spec.mode != "level" or not spec.seasons):
            raise ValueError("seasonal memory needs level mode and at least one season")
        if spec.stream_columns and spec.mode != "level":
            raise ValueError("per-stream scaling needs level mode")
        if list(spec.quantiles) != sorted(spec.quantiles):
            raise ValueError("quantiles must be increasing")
        self.spec = spec
        # Returns mode feeds the return and its magnitude (volatility clusters).
        core_inputs = spec.n_features + (1 if spec.mode == "returns" else 0)
        # Seasonal memory feeds, per season, the current seasonal difference and the
        # next step's seasonal naive value relative to the current one.
        memory_seasons = spec.seasons if spec.memory == "seasonal" else ()
        core_inputs += 2 * len(memory_seasons)
        rnn = nn.LSTM if spec.cell == "lstm" else nn.GRU
        self.rnn = rnn(
            core_inputs,
            spec.hidden,
            num_layers=spec.layers,
            dropout=spec.dropout if spec.layers > 1 else 0.0,
            batch_first=True,
        )
        self.head = nn.Linear(spec.hidden, spec.horizon * len(spec.quantiles))
        # How much of each season's (seasonal naive - current) each horizon step takes;
        # it starts as "same time one longest season ago" plus the head's correction.
        self.gate: nn.Linear | None = None
        if memory_seasons:
            self.gate = nn.Linear(spec.hidden, spec.horizon * len(memory_seasons))
            nn.init.zeros_(self.gate.weight)
            with torch.no_grad():
                self.gate.bias.zero_()
                self.gate.bias.view(len(memory_seasons), spec.horizon)[-1] = 1.0
        self.shift: nn.Linear | None = None
        if memory_seasons and spec.seasonal_shift:
            self.shift = nn.Linear(spec.hidden, spec.horizon * len(memory_seasons))
            nn.init.zeros_(self.shift.weight)
            nn.init.zeros_(self.shift.bias)
        # Buffer offsets of each season's naive value for h = 1..H relative to "now":
        # h - L·ceil(h/L) <= 0, so only values already seen are read. Rebuilt from the
        # spec, never saved.
        steps = torch.arange(1, spec.horizon + 1)
        back = [steps - L * torch.ceil(steps / L).long() for L in memory_seasons]
        self.register_buffer(
            "season_back",
            torch.stack(back) if back else torch.zeros(0, spec.horizon, dtype=torch.long),
            persistent=False,
        )
        self.register_buffer("memory_keep", torch.arange(spec.memory_length), persistent=False)
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
        names = list(spec.state_shapes())
        named = dict(zip(names, state, strict=True))
        z = (x - self.x_mean) / self.x_std
        stream_std: Tensor | None = None
        if spec.stream_columns:
            anchor_global = z[..., spec.target_index]
            z, stream_std, new_stats = self._stream_scale(z, named["stream_stats"])
        rnn_state = [named["h"], named["c"]] if spec.cell == "lstm" else [named["h"]]
        extra_state: list[Tensor] = []
        if spec.mode == "returns":
            prev = named["prev"]
            log_price = torch.log(x[..., spec.target_index])  # [B,T]
            before = torch.cat([prev[:, :1], log_price[:, :-1]], dim=1)
            # The first price a stream ever sends has no predecessor: its return is 0.
            seen = torch.cat([prev[:, 1:2], torch.ones_like(log_price[:, :-1])], dim=1)
            ret = (log_price - before) * seen / self.r_std
            z = torch.cat([z, ret.unsqueeze(-1), ret.abs().unsqueeze(-1)], dim=-1)
            z = torch.cat([z[..., : spec.target_index], z[..., spec.target_index + 1 :]], -1)
            anchor = log_price
            new_prev = torch.stack([log_price[:, -1], torch.ones_like(log_price[:, -1])], -1)
            extra_state.append(new_prev)
        else:
            # With per-stream scaling the anchor stays in global units: the forecast is
            # brought back from the stream's units below, so to_raw is the same for both.
            anchor = z[..., spec.target_index] if stream_std is None else anchor_global
        seasonal = levels = None
        if spec.memory == "seasonal":
            inputs, seasonal, levels, new_memory = self._seasonal(
                anchor, named["history"], named["history_seen"]
            )
            if stream_std is not None:
                inputs = inputs / stream_std.unsqueeze(-1)
            z = torch.cat([z, inputs], dim=-1)
            extra_state += new_memory
        # State is batch-first at the boundary; the cell wants layers first.
        hidden = [s.transpose(0, 1).contiguous() for s in rnn_state]
        out, new_hidden = self.rnn(z, tuple(hidden) if spec.cell == "lstm" else hidden[0])
        if spec.cell == "gru":
            new_hidden = (new_hidden,)
        raw = self.head(out).view(*out.shape[:2], spec.horizon, len(spec.quantiles))
        new_state = [s.transpose(0, 1) for s in new_hidden] + extra_state
        q = _non_crossing(raw, spec.median_index)
        median = q[..., spec.median_index : spec.median_index + 1]
        q = median + self.spread.unsqueeze(-1) * (q - median)
        if stream_std is not None:
            q = q * stream_std.unsqueeze(-1).unsqueeze(-1)  # stream units -> global units
            new_state.append(new_stats)
        # Each seasonal readout shifts every quantile by its multiples of the terms.
        if seasonal is not None and self.gate is not None:
            q = q + self._seasonal_readout(self.gate, out, seasonal)
        if levels is not None and self.shift is not None:
            q = q + self._seasonal_readout(self.shift, out, levels.unsqueeze(-1))
        return q, anchor, new_state

    def _seasonal_readout(self, layer: nn.Linear, out: Tensor, terms: Tensor) -> Tensor:
        """sum over seasons of layer(out) [B,T,nL,H] x terms [B,T,nL,H or 1] -> [B,T,H,1]."""
        weights = layer(out).view(*out.shape[:2], len(self.spec.seasons), self.spec.horizon)
        return (weights * terms).sum(dim=2).unsqueeze(-1)

    def _stream_scale(self, z: Tensor, stats: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """z [B,T,F] globally scaled; stats [B, 1+4k]: the count, then the sums and the
        sums of squares of the k inputs, each as a float32 pair (high, low).

        Returns z with its first k columns scaled by the stream's running statistics
        (including the current step), the target's running std [B,T], and the new stats.
        Sums are cumulative over T in float64, so T steps at once equal T single steps;
        they are kept as high + low float32 halves because a float32 sum of a long-lived
        stream drifts: a small value added to a large float32 sum is rounded away.
        """
        k, prior = self.spec.stream_columns, self.spec.scaling_prior
        inputs = z[..., :k].double()
        wide = stats.double()
        sums0 = wide[:, 1 : 1 + k] + wide[:, 1 + k : 1 + 2 * k]  # [B,k]
        squares0 = wide[:, 1 + 2 * k : 1 + 3 * k] + wide[:, 1 + 3 * k :]
        count = wide[:, :1] + torch.cumsum(torch.ones_like(inputs[..., 0]), dim=1)  # [B,T]
        sums = sums0.unsqueeze(1) + torch.cumsum(inputs, dim=1)
        squares = squares0.unsqueeze(1) + torch.cumsum(inputs * inputs, dim=1)
        weight = count.unsqueeze(-1) + prior
        mean = sums / weight
        std = torch.sqrt(torch.clamp((squares + prior) / weight - mean * mean, min=1e-4))
        scaled = torch.cat([((inputs - mean) / std).float(), z[..., k:]], dim=-1)
        # Totals over T by sums rather than the cumsums' last row: the exporter can then
        # declare the state's length, which it cannot infer from a slice of a dynamic axis.
        steps = torch.ones_like(inputs[..., 0]).sum(dim=1, keepdim=True)  # [B,1]
        new_sums = sums0 + inputs.sum(dim=1)
        new_squares = squares0 + (inputs * inputs).sum(dim=1)
        new_stats = torch.cat(
            [(wide[:, :1] + steps).float(), *_halves(new_sums), *_halves(new_squares)], dim=-1
        )
        return scaled, std[..., self.spec.target_index].float(), new_stats

    def _seasonal(
        self, now: Tensor, history: Tensor, seen: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        """now [B,T] scaled targets; history [B,S]; seen [B,1].

        Returns the cell's extra inputs [B,T,2·nL], each season's (seasonal naive -
        current) for every horizon step [B,T,nL,H] and (value one season ago - current)
        [B,T,nL] (both 0 where unknown), and the new state.
        Index arithmetic is on a [T] ramp built from the data, so T stays dynamic.
        """
        size = self.spec.memory_length
        full = torch.cat([history, now], dim=1)  # [B, S+T]: full[S + t] is step t
        ramp = (torch.cumsum(torch.ones_like(now[0]), 0) - 1.0).long()  # [T]
        first_real = size - seen  # [B,1]: full[j] is real for j >= first_real
        inputs, terms, levels = [], [], []
        for k, season in enumerate(self.spec.seasons):
            at = ramp.unsqueeze(1) + (size + self.season_back[k]).unsqueeze(0)  # [T,H]
            naive = full[:, at]  # [B,T,H]
            known = (at.unsqueeze(0).float() >= first_real.unsqueeze(-1)).float()
            terms.append((naive - now.unsqueeze(-1)) * known)
            back = ramp + (size - season)  # [T]: one season before each step
            known_now = (back.unsqueeze(0).float() >= first_real).float()  # [B,T]
            levels.append((full[:, back] - now) * known_now)
            inputs += [-levels[-1], terms[-1][..., 0]]
        count = torch.ones_like(now[0]).sum()  # T, as a tensor so it stays dynamic
        new_seen = torch.clamp(seen + count, max=float(size))
        return (
            torch.stack(inputs, dim=-1),
            torch.stack(terms, dim=2),
            torch.stack(levels, dim=2),
            # The last S of S+T by a gather with S indices rather than a slice: the
            # exporter can then declare the state's length, which it cannot infer from a
            # slice of a dynamic axis.
            [full[:, self.memory_keep + count.long()], new_seen],
        )

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


def _halves(value: Tensor) -> tuple[Tensor, Tensor]:
    """A float64 as two float32s whose sum is it to about 1e-14 (high, then the rest)."""
    high = value.float()
    return high, (value - high.double()).float()


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
