"""The loaders on the real packages, and a clear error for every kind of bad file."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from training import data
from training.data import DataError


def test_vic_elec_is_the_half_hourly_demand_with_temperature():
    s = data.load("vic_elec")
    assert len(s.frame) == 52_608
    assert s.frequency == "30min" and s.frequency_seconds == 1800
    assert s.inputs == ("demand", "temperature")
    assert s.frame.index[0] == pd.Timestamp("2011-12-31 13:00")  # UTC of 2012-01-01 local
    assert not s.frame.isna().any().any()


def test_sea_surface_temperature_is_cleaned_onto_a_regular_grid():
    s = data.load("sea_surface_temperature")
    assert s.frequency == "30min"
    assert len(s.frame) > 19_000
    assert (np.diff(s.frame.index.asi8) == 1800 * 10**9).all()


@pytest.mark.parametrize("key", ["sp500", "nasdaq"])
def test_arch_indices_are_business_daily_closes(key):
    s = data.load(key)
    assert s.frequency == "B" and s.frequency_seconds == 86400
    assert s.frame.index[0].year == 1999 and s.frame.index[-1].year == 2018
    assert (s.frame.index.dayofweek < 5).all()
    assert (s.frame["close"] > 0).all()


@pytest.mark.parametrize("key", ["aapl", "ibm", "msft", "goog"])
def test_bokeh_stocks_load(key):
    s = data.load(key)
    assert s.inputs == ("close",)
    assert len(s.frame) > 2000


def _write(tmp_path, frame, name="data.csv"):
    path = tmp_path / name
    if name.endswith(".parquet"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


def _good(n=300):
    ts = pd.date_range("2020-01-01", periods=n, freq="h")
    return pd.DataFrame({"ts": ts, "load": np.arange(n, dtype=float), "temp": 1.0})


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_user_file_loads_with_inferred_frequency(tmp_path, suffix):
    path = _write(tmp_path, _good(), f"data.{suffix}")
    s = data.load_file(path, time_column="ts", value_columns=["load", "temp"])
    assert s.frequency in ("h", "H")
    assert s.inputs == ("load", "temp")
    assert s.frame["load"].iloc[-1] == 299.0


@pytest.mark.parametrize(
    ("separator", "decimal"), [(";", ","), (";", "."), ("\t", "."), ("|", ".")]
)
def test_a_csv_with_another_separator_loads(tmp_path, separator, decimal):
    # European exports: semicolons, usually with decimal commas.
    frame = _good().assign(load=lambda f: f["load"] + 0.25)
    text = frame.to_csv(index=False, sep=separator, decimal=decimal)
    path = tmp_path / "data.csv"
    path.write_text(text)
    s = data.load_file(path, time_column="ts")
    assert s.inputs == ("load", "temp") and s.frequency in ("h", "H")
    assert s.frame["load"].iloc[-1] == 299.25


def test_numeric_times_are_epoch_seconds_as_the_service_reads_them(tmp_path):
    frame = _good()
    seconds = frame.assign(ts=frame["ts"].astype("int64") // 10**9)
    s = data.load_file(_write(tmp_path, seconds), time_column="ts")
    assert s.frequency in ("h", "H") and s.frame.index[0] == pd.Timestamp("2020-01-01")
    millis = frame.assign(ts=frame["ts"].astype("int64") // 10**6)
    with pytest.raises(DataError, match=r"'ts' holds numbers.*\(milliseconds\? divide by 1000\)"):
        data.load_file(_write(tmp_path, millis, "ms.csv"), time_column="ts")


def _jittered(seconds, n=400, step="5min"):
    # A sensor clock: every reading a few seconds early or late (deterministic).
    grid = pd.date_range("2024-01-01", periods=n, freq=step)
    offsets = np.random.default_rng(7).uniform(-seconds, seconds, n)
    return grid, pd.DataFrame({"ts": grid + pd.to_timedelta(offsets, unit="s"), "v": np.arange(n)})


@pytest.mark.parametrize("given", [None, "5min"])
def test_a_jittery_clock_is_snapped_onto_its_grid(given):
    grid, frame = _jittered(20.0)  # within 10% of the 5-minute step
    s = data.from_frame(frame, name="j", source="j.csv", time_column="ts", frequency=given)
    assert s.frequency == "5min" and (s.frame.index == grid).all()
    assert s.frame["v"].tolist() == list(range(len(grid)))  # every reading, in its own step
    assert s.fill["snapped_timestamps"] == len(grid)
    assert 0 < s.fill["max_snap_seconds"] <= 20.0
    exact = data.from_frame(frame.assign(ts=grid), name="e", source="e.csv", time_column="ts")
    assert "snapped_timestamps" not in exact.fill


def test_times_too_far_off_the_grid_or_two_in_one_step_are_refused():
    _, frame = _jittered(60.0)  # up to 20% of the step: not a jittery clock
    with pytest.raises(DataError, match=r"s off the '5min' grid .*, more than 10% of a step"):
        data.from_frame(frame, name="j", source="j.csv", time_column="ts", frequency="5min")
    grid, frame = _jittered(5.0)
    frame.loc[10, "ts"] = grid[11] - pd.Timedelta(seconds=8)  # two readings near 00:55
    with pytest.raises(DataError, match=r"two readings in one '5min' step at 2024-01-01 00:55"):
        data.from_frame(frame, name="j", source="j.csv", time_column="ts")


def test_daily_rows_without_weekends_are_trading_days():
    # A user's stock file: weekdays only, market holidays absent.
    days = pd.bdate_range("2020-01-01", periods=400)
    holidays = [days[10], days[200]]
    frame = pd.DataFrame({"ts": days.drop(holidays), "close": 100.0 + np.arange(398)})
    with pytest.raises(DataError, match=r"absent from the 'B' grid.*carry:1, a zero return"):
        data.from_frame(frame, name="p", source="p.csv", time_column="ts")
    s = data.from_frame(
        frame, name="p", source="p.csv", time_column="ts", fill=data.FillPolicy.parse("carry:1")
    )
    assert s.frequency == "B" and len(s.frame) == 400
    assert s.frame["close"].loc[holidays[0]] == s.frame["close"].loc[days[9]]  # carried


@pytest.mark.parametrize("unit", ["s", "ms", "us"])
def test_times_stored_in_another_unit_load(tmp_path, unit):
    # Parquet from polars, DuckDB or Spark keeps seconds, milli- or microseconds.
    frame = _good().assign(ts=lambda f: f["ts"].astype(f"datetime64[{unit}]"))
    s = data.load_file(_write(tmp_path, frame, "data.parquet"), time_column="ts")
    assert s.frequency in ("h", "H") and len(s.frame) == 300 and "snapped_timestamps" not in s.fill
    assert s.frame.index[0] == pd.Timestamp("2020-01-01")


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/Berlin", "Asia/Tokyo"])
def test_dated_rows_with_a_zone_keep_their_local_dates(zone):
    # Daily closes stamped at local midnight: as UTC instants, Berlin's and Tokyo's would
    # fall on the previous day (a Sunday for Monday's close).
    days = pd.bdate_range("2021-01-04", periods=300)
    stamped = days.tz_localize(zone)
    for times in (stamped, [t.isoformat() for t in stamped]):
        frame = pd.DataFrame({"ts": times, "close": 100.0 + np.arange(300)})
        s = data.from_frame(frame, name="p", source="p.csv", time_column="ts")
        assert s.frequency == "B" and (s.frame.index == days).all()


def test_a_quoted_header_name_may_contain_another_separator(tmp_path):
    path = tmp_path / "data.csv"
    rows = "".join(f"2020-01-01 {h:02d}:00;{h},5\n" for h in range(24))
    path.write_text('Zeit;"Leistung (kW, gesamt)"\n' + rows * 1)
    frame = data.read_table(path)
    assert list(frame.columns) == ["Zeit", "Leistung (kW, gesamt)"]
    assert frame["Leistung (kW, gesamt)"].iloc[3] == 3.5


def test_a_semicolon_file_with_point_decimals_loads(tmp_path):
    # df.to_csv(sep=";"): points for decimals, some with three places.
    frame = _good().assign(load=lambda f: f["load"] + 0.125)
    path = tmp_path / "data.csv"
    frame.to_csv(path, sep=";", index=False)
    s = data.load_file(path, time_column="ts")
    assert s.frame["load"].iloc[0] == 0.125 and s.frame["load"].iloc[-1] == 299.125


def test_a_bom_before_a_quoted_header_is_read(tmp_path):
    # What Excel and R write as "CSV UTF-8", with semicolons.
    path = tmp_path / "data.csv"
    rows = "".join(f'"2020-01-01 {h:02d}:00";"{h},5"\n' for h in range(24))
    path.write_text('\ufeff"Zeit";"Wert"\n' + rows, encoding="utf-8")
    frame = data.read_table(path)
    assert list(frame.columns) == ["Zeit", "Wert"] and frame["Wert"].iloc[3] == 3.5


def test_a_semicolon_file_with_points_between_thousands_is_refused(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("ts;load\n2020-01-01 00:00;980,5\n2020-01-01 01:00;1.000,25\n")
    with pytest.raises(DataError, match=r"column 'load': '1.000,25' has a point between thousands"):
        data.read_table(path)


@pytest.mark.parametrize(("value", "hint"), [(1e10, ""), (1.7e12, "milliseconds")])
def test_epoch_seconds_pandas_cannot_hold_are_a_clear_error(tmp_path, value, hint):
    frame = _good().assign(ts=lambda f: f["ts"].astype("int64") // 10**9)
    frame.loc[5, "ts"] = value
    with pytest.raises(DataError, match=rf"outside 1677\.\.2262.*{hint}"):
        data.load_file(_write(tmp_path, frame), time_column="ts")


@pytest.mark.parametrize(
    ("step", "phase", "jitter"),
    [("1s", 0.437, 0.02), ("30min", 90.0, 150.0), ("5min", 0.0, 20.0)],
)
def test_a_jittery_grid_snaps_whatever_its_phase(step, phase, jitter):
    # A 1 Hz logger started at .437 s; half-hourly readings due 90 s past the half hour.
    grid = pd.date_range("2024-01-01", periods=400, freq=step) + pd.Timedelta(seconds=phase)
    offsets = np.random.default_rng(5).uniform(-jitter, jitter, len(grid))
    frame = pd.DataFrame({"ts": grid + pd.to_timedelta(offsets, unit="s"), "v": 1.0})
    s = data.from_frame(frame, name="j", source="j.csv", time_column="ts", frequency=step)
    assert len(s.frame) == len(grid) and s.fill["absent_timestamps"] == 0
    distance = np.abs((s.frame.index - grid).total_seconds())
    assert distance.max() <= 0.1 * pd.Timedelta(step).total_seconds()


def test_a_time_pandas_cannot_hold_in_a_parquet_file_is_a_clear_error(tmp_path):
    frame = _good().assign(ts=lambda f: f["ts"].astype("datetime64[ms]"))
    frame.loc[7, "ts"] = np.datetime64("9999-12-31", "ms")  # a "never" sentinel
    with pytest.raises(DataError, match=r"a time outside 1677\.\.2262.*sentinel"):
        data.load_file(_write(tmp_path, frame, "data.parquet"), time_column="ts")


def test_a_jittery_grid_off_the_epoch_snaps_to_its_own_phase():
    # Readings due at :15 and :45 past the hour, each up to 2.5 minutes early or late.
    grid = pd.date_range("2024-01-01 00:15", periods=400, freq="30min")
    offsets = np.random.default_rng(3).uniform(-150, 150, len(grid))
    frame = pd.DataFrame({"ts": grid + pd.to_timedelta(offsets, unit="s"), "v": 1.0})
    s = data.from_frame(frame, name="j", source="j.csv", time_column="ts", frequency="30min")
    assert (s.frame.index == grid).all()
    # Regular data a little off the epoch's multiples does not move at all.
    regular = data.from_frame(
        frame.assign(ts=grid + pd.Timedelta(seconds=2)), name="r", source="r.csv", time_column="ts"
    )
    assert regular.frame.index[0] == grid[0] + pd.Timedelta(seconds=2)
    assert "snapped_timestamps" not in regular.fill
    # One reading farther off is named, with its distance.
    frame.loc[100, "ts"] = grid[100] + pd.Timedelta(minutes=7)
    named = r"the time 2024-01-03 02:22:00 is [\d.]+ s off the '30min'"
    with pytest.raises(DataError, match=named):
        data.from_frame(frame, name="j", source="j.csv", time_column="ts", frequency="30min")


def test_a_time_off_a_business_day_grid_is_refused_not_snapped():
    # Calendar grids are dates: a close stamped at another time of day is not moved.
    days = pd.bdate_range("2021-01-04", periods=300)
    frame = pd.DataFrame({"ts": days, "close": 100.0})
    frame.loc[40, "ts"] = days[40] + pd.Timedelta(hours=16)
    with pytest.raises(DataError, match=r"1 timestamp\(s\) off the 'B' grid, first at "):
        data.from_frame(frame, name="p", source="p.csv", time_column="ts", frequency="B")


def _bad(kind):
    frame = _good()
    if kind == "missing column":
        return frame.drop(columns=["temp"]), "missing column"
    if kind == "unparseable time":
        frame["ts"] = frame["ts"].astype(str)
        frame.loc[5, "ts"] = "not a time"
        return frame, "unparseable time 'not a time' in column 'ts' in data row 6"
    if kind == "duplicate":
        frame.loc[7, "ts"] = frame.loc[6, "ts"]
        return frame, "duplicate timestamp"
    if kind == "absent timestamp":
        return frame.drop(index=[50]), (
            "1 timestamp at 2020-01-03 02:00:00 absent from the 'h' grid (every column); "
            "the fill policy is --fill none: pass --fill interpolate:1"
        )
    if kind == "off grid":
        frame.loc[50, "ts"] = frame.loc[50, "ts"] + pd.Timedelta("10min")
        return frame, "the time 2020-01-03 02:10:00 is 600 s off the 'h' grid"
    if kind == "too few rows":
        return frame.iloc[:20], "too few rows (20)"
    if kind == "non-numeric":
        frame["load"] = frame["load"].astype(object)
        frame.loc[9, "load"] = "abc"
        return frame, "non-numeric value 'abc' in column 'load' at 2020-01-01 09:00:00"
    if kind == "long gap":
        frame.loc[10:20, "load"] = np.nan
        return frame, (
            "column 'load': 11 values in a row from 2020-01-01 10:00:00 to 2020-01-01 "
            "20:00:00 missing; the fill policy is --fill none: pass --fill interpolate:11"
        )
    if kind == "missing first value":
        frame.loc[0, "temp"] = np.nan
        return frame, "column 'temp': 1 value at 2020-01-01 00:00:00 missing"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "missing column",
        "unparseable time",
        "duplicate",
        "absent timestamp",
        "off grid",
        "too few rows",
        "non-numeric",
        "long gap",
        "missing first value",
    ],
)
def test_bad_files_get_a_clear_error(tmp_path, kind):
    frame, message = _bad(kind)
    path = _write(tmp_path, frame)
    with pytest.raises(DataError, match=re.escape(message)):
        data.load_file(path, time_column="ts", value_columns=["load", "temp"], frequency="h")


def test_value_columns_default_to_every_column_but_time(tmp_path):
    s = data.load_file(_write(tmp_path, _good()), time_column="ts")
    assert s.inputs == ("load", "temp") and s.target == "load"


def test_a_non_numeric_extra_column_names_the_flag(tmp_path):
    frame = _good().assign(site="north")
    with pytest.raises(DataError, match=r"column 'site' at .*--value-columns"):
        data.load_file(_write(tmp_path, frame), time_column="ts")


def test_unsorted_rows_are_put_in_time_order(tmp_path):
    frame = _good().iloc[::-1]
    s = data.load_file(_write(tmp_path, frame), time_column="ts", value_columns=["load"])
    assert s.frame.index.is_monotonic_increasing and s.frame["load"].iloc[0] == 0.0


def test_local_times_with_daylight_saving_offsets_become_utc_instants():
    # A local-time export: the offset changes at the clock changes, so its wall-clock
    # hours repeat (October) and skip (March); as UTC instants the grid is regular.
    local = pd.date_range("2023-03-20", "2023-11-10", freq="h", tz="Europe/Paris")
    frame = pd.DataFrame({"ts": [t.isoformat() for t in local], "v": np.arange(len(local))})
    s = data.from_frame(frame, name="x", source="x.csv", time_column="ts")
    assert s.frequency == "h" and len(s.frame) == len(local)
    assert (s.frame.index == local.tz_convert("UTC").tz_localize(None)).all()
    assert s.frame["v"].tolist() == list(range(len(local)))  # nothing filled or dropped
    # Times with a zone or none, as the service reads them: "Z" and no zone are both UTC.
    z = data.from_frame(
        frame.assign(ts=[t.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ") for t in local]),
        name="z",
        source="z.csv",
        time_column="ts",
    )
    assert (z.frame.index == s.frame.index).all()


def test_local_wall_clock_times_repeating_an_hour_name_the_clock_change():
    wall = pd.date_range("2023-10-01", "2023-11-10", freq="h", tz="Europe/Paris")
    frame = pd.DataFrame({"ts": wall.tz_localize(None).astype(str), "v": 1.0})
    with pytest.raises(
        DataError, match=r"duplicate timestamp\(s\), first 2023-10-29 02:00:00 \(local"
    ):
        data.from_frame(frame, name="x", source="x.csv", time_column="ts")


def test_unknown_dataset_names_the_choices():
    with pytest.raises(DataError, match="vic_elec"):
        data.load("no_such_set")


def test_a_target_outside_the_value_columns_is_named_before_anything_runs():
    frame = _good()
    with pytest.raises(DataError, match=r"no column 'price' \(--target\); found \['ts'"):
        data.from_frame(frame, name="t", source="t.csv", time_column="ts", target="price")
    with pytest.raises(DataError, match=r"'temp' \(--target\) is not among .*add it"):
        data.from_frame(
            frame, name="t", source="t.csv", time_column="ts", value_columns=["load"], target="temp"
        )


@pytest.mark.parametrize("years", [np.arange(1700, 2009), np.arange(1700.0, 2009.0)])
def test_a_time_column_of_years_is_refused_not_read_as_seconds(years):
    frame = pd.DataFrame({"YEAR": years, "spots": 1.0})
    with pytest.raises(DataError, match=r"whole numbers 1700..2008, which look like years"):
        data.from_frame(frame, name="s", source="s.csv", time_column="YEAR")


@pytest.mark.parametrize(
    ("start", "pattern"),
    [
        ("2018-11-01", "%d/%m/%Y %H:%M"),  # 13/11 only parses day first
        ("2018-12-01", "%d/%m/%Y %H:%M"),  # days 1..12: both parse, day first is regular
        ("2018-12-01", "%m/%d/%Y %H:%M"),  # the same days month first stay month first
        ("2020-01-01", "%d.%m.%Y %H:%M"),
    ],
)
def test_dates_written_day_first_are_read_day_first(start, pattern):
    times = pd.date_range(start, periods=12 * 24, freq="h")
    frame = pd.DataFrame({"time": times.strftime(pattern), "v": np.arange(len(times), dtype=float)})
    s = data.from_frame(frame, name="d", source="d.csv", time_column="time")
    assert s.frequency == "h" and (s.frame.index == times).all()


def test_a_frequency_coarser_than_the_readings_says_so():
    with pytest.raises(DataError, match=r"0 days 01:00:00 apart, finer than --frequency 2h"):
        data.from_frame(_good(), name="t", source="t.csv", time_column="ts", frequency="2h")


def test_duplicates_are_counted_and_a_clock_change_named_only_where_one_can_be():
    frame = pd.DataFrame({"ts": pd.date_range("2010-05-18", periods=300, freq="min"), "v": 1.0})
    frame.loc[[7, 9], "ts"] = frame.loc[[6, 8], "ts"].to_numpy()
    with pytest.raises(DataError) as info:
        data.from_frame(frame, name="g", source="g.csv", time_column="ts")
    message = str(info.value)
    assert "2 duplicate timestamp(s), first 2010-05-18 00:06:00" in message
    assert "clocks" not in message


def test_an_irregular_file_says_how_irregular_when_no_frequency_can_be_inferred():
    # Event counts: hours with no event have no line, so spacings vary widely.
    hours = pd.date_range("2018-01-01", periods=600, freq="h")
    keep = np.random.default_rng(4).random(600) < 0.5
    frame = pd.DataFrame({"hour": hours[keep], "trips": 1.0})
    with pytest.raises(DataError, match=r"the most common spacing, 0 days 01:00:00, is between"):
        data.from_frame(frame, name="b", source="b.csv", time_column="hour")


def test_two_digit_years_are_read_by_their_fields_not_by_chance():
    # pandas parses these row by row (no single format), swapping day and month where
    # one reading is impossible: only the fields can decide the whole file.
    year = pd.date_range("2019-01-01", "2019-12-31 23:00", freq="h")
    frame = pd.DataFrame(
        {"ts": [f"{t.day}/{t.month}/{t.year % 100:02d} {t.hour}:00" for t in year], "v": 1.0}
    )
    s = data.from_frame(frame, name="d", source="d.csv", time_column="ts")
    assert s.frequency == "h" and (s.frame.index == year).all()
    # Month first with a fifth of the days absent stays month first.
    days = pd.date_range("2019-01-01", "2020-12-31", freq="D")
    days = days[np.random.default_rng(3).random(len(days)) > 0.2]
    frame = pd.DataFrame({"ts": [f"{t.month}/{t.day}/{t.year % 100:02d}" for t in days], "v": 1.0})
    s = data.from_frame(
        frame,
        name="u",
        source="u.csv",
        time_column="ts",
        frequency="D",
        fill=data.FillPolicy.parse("interpolate:20"),
    )
    assert s.frame.index[0] == days[0] and s.frame.index[-1] == days[-1]
    assert set(days) <= set(s.frame.index)


def test_the_target_cannot_be_the_time_column():
    with pytest.raises(DataError, match=r"--target 'ts' is the time column; name a value"):
        data.from_frame(_good(), name="t", source="t.csv", time_column="ts", target="ts")


def test_dated_rows_with_a_zone_written_day_first_keep_their_local_date():
    # Daily closes at a Tokyo midnight, day first: the wall clock is read the same way.
    days = pd.date_range("2018-11-01", periods=300, freq="D")
    stamps = days.tz_localize("Asia/Tokyo").strftime("%d/%m/%Y %H:%M%z")
    frame = pd.DataFrame({"ts": stamps, "close": np.arange(300.0)})
    s = data.from_frame(frame, name="p", source="p.csv", time_column="ts")
    assert s.frequency == "D" and (s.frame.index == days).all()
