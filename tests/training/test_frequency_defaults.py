"""Frequency-aware defaults: seasons, horizon, MASE season and baseline names in time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training import frequency as freq
from training.config import TrainConfig, preset
from training.data import DataError, from_frame
from training.resolve import resolve


@pytest.mark.parametrize(
    ("alias", "seasons", "horizon"),
    [
        ("30min", (48, 336), 48),
        ("h", (24, 168), 24),
        ("15min", (96, 672), 96),
        ("D", (7, 365), 7),
        ("B", (5,), 5),
    ],
)
def test_seasons_and_horizon_follow_the_frequency(alias, seasons, horizon):
    assert freq.default_seasons(alias) == seasons
    assert freq.default_horizon(alias) == horizon


@pytest.mark.parametrize(
    ("steps", "alias", "text", "words"),
    [
        (48, "30min", "1d", "1 day"),
        (336, "30min", "1w", "1 week"),
        (24, "h", "1d", "1 day"),
        (168, "h", "1w", "1 week"),
        (7, "D", "1w", "1 week"),
        (365, "D", "1y", "1 year"),
        (5, "B", "1w", "1 week"),
        (6, "h", "6h", "6 hours"),
    ],
)
def test_seasons_are_named_by_their_period_in_time(steps, alias, text, words):
    assert freq.label(steps, alias) == text
    assert freq.words(text) == words
    assert freq.steps_of_label(text, alias) == steps


@pytest.mark.parametrize(("alias", "weeks"), [("W", 1), ("W-SUN", 1), ("W-MON", 1), ("2W-WED", 2)])
def test_a_week_anchored_on_a_weekday_is_seven_days(alias, weeks):
    # pandas infers "W-<day>" for weekly data; its length is fixed although its offset
    # is not a plain span of time.
    assert freq.step_seconds(alias) == weeks * freq.WEEK
    assert freq.default_horizon(alias) == 4
    assert not freq.is_fixed(alias)  # its steps fall on a weekday: no snapping onto it


@pytest.mark.parametrize("alias", ["s", "5min", "30min", "h", "D", "2D"])
def test_spans_of_time_are_fixed_steps(alias):
    assert freq.is_fixed(alias)


@pytest.mark.parametrize("alias", ["MS", "ME", "QS-JAN", "QE-DEC", "YS-JAN", "bh", "ms"])
def test_steps_without_a_fixed_length_of_whole_seconds_are_refused(alias):
    with pytest.raises(freq.UnsupportedFrequency, match=repr(alias)):
        freq.step_seconds(alias)


def test_weekly_data_loads_and_monthly_data_is_a_clear_error():
    weekly = _series("W-MON", 300)
    assert weekly.frequency == "W-MON" and weekly.frequency_seconds == freq.WEEK
    config, _ = resolve(preset("sensor"), weekly)
    assert config.horizon == 4 and config.seasons == ()  # 52.18 weeks: no whole year
    with pytest.raises(DataError, match=r"s\.csv: frequency 'MS' has steps of varying length"):
        _series("MS", 240)


def test_a_period_that_is_no_whole_number_of_steps_is_refused():
    with pytest.raises(ValueError, match="not a whole number"):
        freq.steps_of_label("90min", "h")


def _series(alias, n):
    ts = pd.date_range("2021-01-01", periods=n, freq=alias)
    level = 10 + np.sin(np.arange(n) * 0.3)
    return from_frame(
        pd.DataFrame({"ts": ts, "v": level}), name="s", source="s.csv", time_column="ts"
    )


def test_hourly_data_gets_hourly_seasons_not_half_hourly_steps():
    config, _ = resolve(preset("sensor"), _series("h", 24 * 7 * 12))
    assert config.horizon == 24 and config.seasons == (24, 168) and config.season == 24
    assert config.baselines == ("seasonal_naive_1d", "seasonal_naive_1w", "mstl", "autoets")
    assert config.origin_every == 24 and config.memory == "seasonal"
    assert config.time_features == ("time_of_day", "day_of_week")


def test_daily_data_gets_a_weekly_horizon_and_drops_a_year_it_cannot_hold():
    config, notes = resolve(preset("sensor"), _series("D", 600))
    assert config.horizon == 7 and config.seasons == (7,)
    assert any("season 365 steps (1 year)" in n for n in notes)


def test_prices_get_the_stock_baselines():
    config, _ = resolve(preset("sp500"), _series("B", 1200))
    assert config.horizon == 5 and config.season == 1 and config.memory == "none"
    assert config.baselines == ("random_walk", "historical_returns", "autoets", "garch")


def test_an_explicit_setting_wins_and_an_impossible_one_is_refused_before_training():
    series = _series("h", 600)
    config, _ = resolve(TrainConfig("x", "s.csv", horizon=6, seasons=(12,)), series)
    assert config.horizon == 6 and config.baselines[0] == "seasonal_naive_12h"
    with pytest.raises(DataError, match=r"season 250 steps .*\(--seasons\)"):
        resolve(TrainConfig("x", "s.csv", seasons=(250,)), series)
    with pytest.raises(DataError, match=r"baseline 'seasonal_naive_2w' .* needs 696 training"):
        resolve(TrainConfig("x", "s.csv", baselines=("seasonal_naive_2w",)), series)
    with pytest.raises(DataError, match="horizon of 200 steps"):
        resolve(TrainConfig("x", "s.csv", horizon=200), series)


def test_the_statsforecast_window_holds_the_longest_season_in_bounded_time():
    hourly, _ = resolve(preset("sensor"), _series("h", 24 * 7 * 30))
    assert hourly.baseline_window == 8 * 168
    daily, _ = resolve(preset("sensor"), _series("D", 4000))
    assert daily.seasons == (7, 365) and daily.baseline_window == 3 * 365


def test_seasonal_memory_is_the_default_only_for_long_intraday_series():
    long_hourly, _ = resolve(preset("sensor"), _series("h", 24 * 7 * 12))
    assert long_hourly.memory == "seasonal"
    short, notes = resolve(preset("sensor"), _series("h", 24 * 7 * 5))
    assert short.memory == "none" and any("no seasonal memory" in n for n in notes)
    daily, _ = resolve(preset("sensor"), _series("D", 4000))
    assert daily.memory == "none"
    forced, _ = resolve(preset("sensor").replace(memory="seasonal"), _series("D", 4000))
    assert forced.memory == "seasonal"


def test_the_served_default_is_the_light_graph_and_user_files_get_the_derived_recipe():
    """elec-demand is what the service's speed figures are measured with: no seasonal
    memory, whatever the data; the seasonal variant is a named preset; a user's file
    gets the `sensor` recipe, which derives the memory."""
    long_hourly = _series("h", 24 * 7 * 12)
    assert resolve(preset("elec-demand"), long_hourly)[0].memory == "none"
    assert resolve(preset("elec-demand-seasonal"), long_hourly)[0].memory == "seasonal"
    assert resolve(preset("sensor"), long_hourly)[0].memory == "seasonal"
    from training.__main__ import _parser

    args = _parser().parse_args(["all", "--dataset", "plant.csv"])
    assert args.config is None  # main() then picks "sensor"; without --dataset, elec-demand


def test_a_series_too_short_for_the_batches_trains_by_the_short_recipe():
    """12 weeks of half-hours make the sensor recipe's 32 windows ~100 steps, one chunk
    of 96: the short recipe takes over and says so, once (a resolved config keeps its
    settings); a long series, a price series and a config that opts out keep theirs; a
    global model's windows span every series' rows."""
    sensor = preset("sensor")
    twelve_weeks = _series("30min", 48 * 7 * 12)
    short, notes = resolve(sensor, twelve_weeks)
    assert (short.segments, short.chunk, short.patience) == (8, 24, 100)
    assert any(
        n.startswith("short series: 32 training windows of 100 steps hold 1.0") for n in notes
    )
    again, notes = resolve(short.replace(segments=32, chunk=96), twelve_weeks)
    assert (again.segments, again.chunk) == (32, 96) and not any("short" in n for n in notes)
    kept, _ = resolve(sensor.replace(short_recipe=False), twelve_weeks)
    assert (kept.segments, kept.chunk, kept.patience) == (32, 96, 30)
    long, notes = resolve(sensor, _series("30min", 48 * 7 * 60))
    assert (long.segments, long.chunk, long.patience) == (32, 96, 30)
    prices, _ = resolve(preset("sp500"), _series("B", 1200))
    assert (prices.segments, prices.chunk) == (16, 64)
    fleet, _ = resolve(sensor, twelve_weeks, training_rows=20 * 3225)
    assert (fleet.segments, fleet.chunk) == (32, 96)
    tiny = sensor.replace(segments=4, chunk=32)  # 8 x 24 would give it fewer chunks
    assert resolve(tiny, _series("h", 600))[0].segments == 4


def test_a_short_series_exports_half_its_seasonal_start_and_a_long_one_none():
    sensor = preset("sensor")
    twelve_weeks = _series("30min", 48 * 7 * 12)
    assert resolve(sensor, twelve_weeks)[0].start_weight == 0.5
    assert resolve(sensor, _series("30min", 48 * 7 * 60))[0].start_weight == 0.0
    chosen = sensor.replace(start_weight=0.2)  # the user's value stands either way
    assert resolve(chosen, twelve_weeks)[0].start_weight == 0.2
    assert resolve(chosen, _series("30min", 48 * 7 * 60))[0].start_weight == 0.2
