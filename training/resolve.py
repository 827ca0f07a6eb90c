"""From a config and a series to the concrete settings of one training run.

Fills every "derive from the data" field of a TrainConfig (None) from the series'
frequency and length, and checks BEFORE any training that the series is long enough for
everything configured (the horizon, each season, each baseline's window), so a run never
fails after minutes of training or leaves partial output. A derived setting that does
not fit is dropped with a note; a setting the user gave that does not fit is an error.
"""

from __future__ import annotations

import math

from training import frequency as freq
from training.config import TrainConfig
from training.data import DataError, Series, dropped_note
from training.features import Split

MEMORY_SEASONS = 8  # seasonal memory by default only with this many longest seasons
MAX_ORIGINS = 120  # derived origin spacing keeps the statsforecast refits in minutes
MIN_WINDOW = 500  # trailing window of the statsforecast baselines, at least
MAX_WINDOW = 2700  # 8 seasons up to this (8 weeks of half-hours); else 3 seasons, so a
#                    yearly MSTL on daily data refits in seconds, not a minute an origin
# A level series whose training windows hold fewer than MIN_CHUNKS chunks at the
# config's segments x chunk trains by SHORT_RECIPE instead: at the sensor recipe's
# 32 x 96, 12 weeks of half-hours made windows of ~100 steps, one chunk and a 4-step
# tail; no epoch after the first improved validation, early stopping ended every run at
# epoch 31, and the model kept was the weekly seasonal naive it starts from (docs/
# training.md "Short series: the training recipe").
MIN_CHUNKS = 4
SHORT_RECIPE = {"segments": 8, "chunk": 24, "patience": 100}
# A short series' seasonal-memory forecast is half its fitted start's (train.fit): there
# training's validation choice carried poorly to the test; on the long suite series the
# blend cost 3-19% MAE, so they keep the trained model (docs/training.md).
SHORT_START_WEIGHT = 0.5
STATSFORECAST = ("mstl", "autoets", "autoarima")
LEVEL_BASELINES = ("seasonal_naive", "mstl", "autoets")
RETURNS_BASELINES = ("random_walk", "historical_returns", "autoets", "garch")
KNOWN = ("seasonal_naive", "naive", "random_walk", "historical_returns", "garch", *STATSFORECAST)


def resolve(
    config: TrainConfig, series: Series, training_rows: int | None = None
) -> tuple[TrainConfig, list[str]]:
    """The config with every derived field set, and notes on what was derived or dropped.
    training_rows: the rows every series together train on (a global model of many
    series, `series` its shortest); None = the series' own training part."""
    notes: list[str] = []
    n, frequency = len(series.frame), series.frequency
    try:
        split = Split.of(n, config.validation_fraction, config.test_fraction)
    except ValueError as exc:
        raise DataError(f"{series.source}: {exc}") from None
    if config.mode == "returns" and (series.frame[config.target or series.target] <= 0).any():
        raise DataError(f"{series.source}: returns mode needs strictly positive prices")

    horizon = config.horizon or freq.default_horizon(frequency)
    test_rows = split.n - split.test
    if test_rows <= horizon:
        raise DataError(
            f"{series.source}: the test split has {test_rows} rows, not enough for a "
            f"horizon of {horizon} steps (--horizon); use more data or a shorter horizon"
            + dropped_note(series.fill)
        )

    seasons = _seasons(config, series, split, horizon, notes)
    season = config.season or (min(seasons) if seasons and config.mode == "level" else 1)
    if season >= split.val:
        raise DataError(f"{series.source}: MASE season {season} exceeds the training part")
    memory = config.memory or _memory(config, series, split, seasons, notes)
    if memory == "seasonal" and (not seasons or config.mode != "level"):
        raise DataError("--memory seasonal needs a level-mode model with a season (--seasons)")
    if memory not in ("seasonal", "none"):
        raise DataError(f"--memory {memory!r}: must be 'seasonal' or 'none'")
    if config.anchor not in ("fitted", "naive"):
        raise DataError(f"--anchor {config.anchor!r}: must be 'fitted' or 'naive'")
    if config.start_weight is not None and not 0.0 <= config.start_weight <= 1.0:
        raise DataError(f"--start-weight {config.start_weight}: must be between 0 and 1")

    window = config.baseline_window or min(_window(seasons), split.test)
    if window > split.test:
        raise DataError(
            f"{series.source}: baseline window {window} is longer than the {split.test} "
            f"rows before the test split"
        )
    baselines = _baselines(config, series, split, horizon, seasons, window, notes)

    every = config.origin_every
    if every is None:
        every = horizon if freq.is_intraday(frequency) else 1
        count = math.ceil((test_rows - horizon) / every)
        if count > MAX_ORIGINS:
            every = math.ceil((test_rows - horizon) / MAX_ORIGINS)
            where = " on the shortest series" if training_rows else ""
            notes.append(f"origins every {every} steps (at most {MAX_ORIGINS} origins{where})")

    time_features = config.time_features
    if time_features is None:
        time_features = freq.default_time_features(frequency, config.mode)
    recipe = _short_recipe(config, training_rows or split.val, split.val, notes)
    start_weight = config.start_weight
    if start_weight is None:
        start_weight = SHORT_START_WEIGHT if recipe else 0.0
    resolved = config.replace(
        **recipe,
        short_recipe=False,
        start_weight=start_weight,
        horizon=horizon,
        seasons=seasons,
        season=season,
        memory=memory,
        baselines=baselines,
        baseline_window=window,
        origin_every=every,
        time_features=tuple(time_features),
    )
    return resolved, notes


def _memory(
    config: TrainConfig, series: Series, split: Split, seasons: tuple[int, ...], notes: list[str]
) -> str:
    """Seasonal memory where it was seen to help: intraday level data whose training part
    holds at least MEMORY_SEASONS of the longest season. On the suite's daily series and
    its 5-week series it made the model worse (it starts from the longest season's naive
    forecast and had too few seasons to learn the correction), so those get none."""
    if config.mode != "level" or not seasons or not freq.is_intraday(series.frequency):
        return "none"
    if split.val < MEMORY_SEASONS * max(seasons):
        notes.append(
            f"no seasonal memory: the training part holds {split.val / max(seasons):.1f} of "
            f"the longest season, fewer than {MEMORY_SEASONS}"
        )
        return "none"
    return "seasonal"


def window_length(rows: int, shortest: int, segments: int) -> int:
    """The training windows' length: about `segments` of them over all rows, none longer
    than the shortest series' training part. train._pieces cuts the windows by it, so
    the short-series rule counts chunks on the windows training will use."""
    return max(1, min(rows // segments, shortest))


def _short_recipe(
    config: TrainConfig, rows: int, shortest: int, notes: list[str]
) -> dict[str, int]:
    """SHORT_RECIPE's settings for a level series whose windows are too short for the
    config's chunks, when they give more chunks a window; else nothing. Shorter chunks
    in fewer, longer windows give a few-week series several updates a window, and the
    longer patience lets them move the model off its starting forecast; measured on
    12-week windows of French and Victorian load (docs/training.md). Price models keep
    their recipe (tuned on daily prices); so does a config with short_recipe False."""
    if config.mode != "level" or not config.short_recipe:
        return {}
    length = window_length(rows, shortest, config.segments)
    chunks = length / config.chunk
    short = window_length(rows, shortest, SHORT_RECIPE["segments"])
    if chunks >= MIN_CHUNKS or short / SHORT_RECIPE["chunk"] <= chunks:
        return {}
    recipe = dict(SHORT_RECIPE, patience=max(config.patience, SHORT_RECIPE["patience"]))
    notes.append(
        f"short series: {config.segments} training windows of {length} steps hold "
        f"{chunks:.1f} chunks of {config.chunk} (gradient updates a window), fewer than "
        f"{MIN_CHUNKS}; trained with {recipe['segments']} windows of {short} steps in "
        f"chunks of {recipe['chunk']} ({short / recipe['chunk']:.1f} a window) and "
        f"patience {recipe['patience']}"
    )
    return recipe


def _window(seasons: tuple[int, ...]) -> int:
    longest = max(seasons, default=1)
    return max(8 * longest if 8 * longest <= MAX_WINDOW else 3 * longest, MIN_WINDOW)


def _seasons(
    config: TrainConfig, series: Series, split: Split, horizon: int, notes: list[str]
) -> tuple[int, ...]:
    """Seasons the training part holds at least twice over (plus a horizon)."""
    if config.mode == "returns":
        return tuple(config.seasons or ())
    wanted = (
        config.seasons if config.seasons is not None else freq.default_seasons(series.frequency)
    )
    kept = []
    for s in sorted(set(wanted)):
        if s < 2:
            raise DataError(f"--seasons: a season is at least 2 steps, not {s}")
        if split.val >= 2 * s + horizon:
            kept.append(s)
            continue
        text = (
            f"season {s} steps ({freq.words(freq.label(s, series.frequency))}) needs "
            f"{2 * s + horizon} training rows, the training part has {split.val}"
        )
        if config.seasons is not None:
            raise DataError(f"{series.source}: {text} (--seasons)")
        notes.append(f"dropped {text}")
    return tuple(kept)


def _baselines(
    config: TrainConfig,
    series: Series,
    split: Split,
    horizon: int,
    seasons: tuple[int, ...],
    window: int,
    notes: list[str],
) -> tuple[str, ...]:
    """Baseline names, a seasonal naive per season named by its period in time."""
    wanted = config.baselines
    if wanted is None:
        wanted = LEVEL_BASELINES if config.mode == "level" else RETURNS_BASELINES
    names: list[str] = []
    for name in wanted:
        if name == "seasonal_naive":
            if not seasons:
                names.append("naive")
                notes.append("no season fits: the naive forecast stands in for seasonal naive")
            names += [f"seasonal_naive_{freq.label(s, series.frequency)}" for s in seasons]
            continue
        if name.startswith("seasonal_naive_"):
            try:
                lag = freq.steps_of_label(name.removeprefix("seasonal_naive_"), series.frequency)
            except ValueError as exc:
                raise DataError(f"baseline {name!r}: {exc}") from None
            if split.val < 2 * lag + horizon:
                raise DataError(
                    f"{series.source}: baseline {name!r} (--baselines) needs "
                    f"{2 * lag + horizon} training rows, the training part has {split.val}"
                )
        elif name not in KNOWN:
            raise DataError(f"unknown baseline {name!r}; known: {', '.join(KNOWN)}")
        if name == "mstl" and not seasons:
            notes.append("MSTL left out: no season fits the data")
            continue
        if name == "mstl" and window <= 2 * min(seasons):
            notes.append(f"MSTL left out: its window of {window} rows holds no season twice")
            continue
        if name == "garch" and config.mode != "returns":
            raise DataError("the garch baseline needs a returns-mode (price) model")
        names.append(name)
    return tuple(dict.fromkeys(names))


def baseline_lag(name: str, frequency: str) -> int:
    """The lag of a seasonal naive baseline by name: 'seasonal_naive_1w' -> 336 at 30 min."""
    if name == "naive":
        return 1
    return freq.steps_of_label(name.removeprefix("seasonal_naive_"), frequency)
