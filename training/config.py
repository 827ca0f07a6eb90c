"""Typed training configs and the named presets the CLI trains.

A config holds everything that decides an artifact: the data, the split, the model and
the optimiser. It is written into the manifest whole, so an artifact says how it was made.

Fields that depend on the data's frequency (horizon, seasons, MASE season, time
features, origins, baselines, the seasonal memory) default to None, "derive from the
data": training/resolve.py fills them in from the series before training, so a config
never counts in the steps of the data set it was tuned on. A preset or a CLI flag that
sets one overrides the derivation.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrainConfig:
    name: str  # the model's name in models/<name>/<version>/ and in the API
    dataset: str  # a key of training.data.DATASETS, or a CSV/Parquet path
    version: str = "1"
    # -- data -------------------------------------------------------------------------
    target: str | None = None  # column to forecast; None = the data set's default
    inputs: tuple[str, ...] | None = None  # client-sent columns; None = data set default
    # "time_of_day", "day_of_week", "day_of_year"; None = by frequency
    time_features: tuple[str, ...] | None = None
    validation_fraction: float = 0.15  # chronological: train | validation | test
    test_fraction: float = 0.15
    max_rows: int | None = None  # keep only the last rows (tests use tiny slices)
    # -- model ------------------------------------------------------------------------
    mode: str = "level"  # "level": forecast the target; "returns": log returns of a price
    cell: str = "lstm"  # "lstm" or "gru"
    hidden: int = 64
    layers: int = 2
    dropout: float = 0.1
    horizon: int | None = None  # steps ahead; None = one day intraday, a week daily, 5 "B"
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    # Seasonal periods in steps; None = by frequency (30 min: 48, 336; hourly: 24, 168;
    # daily: 7, 365; business days: 5); seasons the training part cannot hold twice over
    # are dropped. They name the seasonal naive baselines, MSTL's seasons and the memory.
    seasons: tuple[int, ...] | None = None
    # "seasonal": the graph keeps the last max(seasons) target values as state and adds a
    # learned correction of the seasonal naive forecasts; "none": the recurrent state only.
    # None = "seasonal" for intraday level series whose training part holds 8 of the
    # longest season (where it was seen to help), else "none".
    memory: str | None = None
    # With seasonal memory, where the forecast starts: "fitted" = the least-squares
    # seasonal linear forecast on the training part (training/anchor.py) or same time
    # one longest season ago, whichever validates better (and the shift terms);
    # "naive" = same time one longest season ago, the graph without shift terms.
    anchor: str = "fitted"
    # With a seasonal start (anchor "fitted"): the exported median is this weight times
    # the start's forecast plus the rest times the trained model's (0 = trained only).
    # None = 0.5 on a series short enough for the short-series recipe (where training
    # carried poorly to the test), else 0 (training/resolve.py).
    start_weight: float | None = None
    # -- training: truncated BPTT that carries state across consecutive chunks --------
    segments: int = 32  # parallel contiguous segments of the training series (batch)
    chunk: int = 96  # steps per backward pass; state is detached, not reset, between
    epochs: int = 40
    patience: int = 6  # early stopping on validation loss
    # True: a level series too short for segments x chunk trains by the short-series
    # recipe instead (training/resolve.py); False: these settings stand. A resolved
    # config has it False, so resolving it again changes nothing.
    short_recipe: bool = True
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"  # "auto" = CUDA when present, else CPU; export is always on CPU
    threads: int = 1  # torch threads: the cells are small, and 1 thread does not spin
    #                   against other work on a 2-core machine (2 threads ran 8x slower
    #                   while another process was busy)
    max_train_seconds: float = 480.0  # hard budget; the best validation epoch is kept
    # -- evaluation -------------------------------------------------------------------
    season: int | None = None  # MASE scale: in-sample seasonal naive lag; None = shortest
    #                            season (1 = naive, and always for returns mode)
    origin_every: int | None = None  # rolling origins every n steps; None = daily for
    #                                  intraday data, else every step (at most ~120)
    # None = by mode: level: "seasonal_naive" (one per season), "mstl", "autoets";
    # returns: "random_walk", "historical_returns", "autoets", "garch".
    baselines: tuple[str, ...] | None = None
    baseline_window: int | None = None  # trailing window statsforecast fits on; None =
    #               8 x the longest season (3 x beyond 2,700 steps; at least 500 steps)
    fill: str = "none"  # the data's gap policy, recorded (training/data.py FillPolicy)
    extra: dict[str, float] = field(default_factory=dict)

    def replace(self, **changes: object) -> TrainConfig:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


# The recipe for a user's sensor or load file (the CLI's default with --dataset):
# horizon, seasons, baselines, time features and the seasonal memory come from the data.
SENSOR = TrainConfig(
    name="sensor",
    dataset="vic_elec",
    validation_fraction=0.12,
    test_fraction=0.08,  # on vic_elec: the last 12 weeks, 87 daily origins
    epochs=300,  # about 1 s each on 2 cores; early stopping ends it sooner
    patience=30,
)

PRESETS: dict[str, TrainConfig] = {
    "sensor": SENSOR,
    # The served default: half-hourly Victoria demand with temperature, WITHOUT seasonal
    # memory. Its state is 1,024 bytes a stream and its ORT step about half the seasonal
    # graph's; the service's throughput figures are measured with it (docs/benchmarks.md).
    "elec-demand": SENSOR.replace(name="elec-demand", memory="none"),
    # The same data with seasonal memory: lower MAE, 2.3x the state, ~2x the ORT step.
    "elec-demand-seasonal": SENSOR.replace(name="elec-demand-seasonal", memory="seasonal"),
    # S&P 500 daily closes modelled as log returns; one week ahead, every day an origin.
    "sp500": TrainConfig(
        name="sp500",
        dataset="sp500",
        mode="returns",
        hidden=32,
        layers=1,
        dropout=0.0,
        segments=16,
        chunk=64,
        learning_rate=2e-3,
        epochs=200,
        patience=30,
        origin_every=1,
        baseline_window=500,
    ),
    # Tiny configs for tests: seconds, not minutes.
    "tiny-sensor": TrainConfig(
        name="tiny-sensor",
        dataset="vic_elec",
        time_features=("time_of_day", "day_of_week"),
        max_rows=1500,
        hidden=8,
        layers=1,
        dropout=0.0,
        horizon=6,
        seasons=(48,),
        memory="none",
        segments=4,
        chunk=32,
        epochs=2,
        patience=2,
        origin_every=12,
        baselines=("seasonal_naive",),
        max_train_seconds=30.0,
    ),
    "tiny-stock": TrainConfig(
        name="tiny-stock",
        dataset="sp500",
        mode="returns",
        max_rows=800,
        hidden=8,
        layers=1,
        dropout=0.0,
        horizon=3,
        segments=4,
        chunk=32,
        epochs=2,
        patience=2,
        origin_every=5,
        baselines=("random_walk", "historical_returns"),
        max_train_seconds=30.0,
    ),
}

# The tiny sensor with seasonal memory: a season shorter than the horizon (4 < 6) and one
# longer, so both ways of reading the seasonal naive from the buffer are exercised.
PRESETS["tiny-seasonal"] = PRESETS["tiny-sensor"].replace(
    name="tiny-seasonal", time_features=("time_of_day",), seasons=(4, 48), memory="seasonal"
)


def preset(name: str) -> TrainConfig:
    try:
        return PRESETS[name]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise SystemExit(f"unknown config {name!r}; known configs: {known}") from None
