"""--fill: gaps and missing values are filled by the chosen policy, or refused by name."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from training.data import DataError, FillPolicy, from_frame


def _frame(n=300):
    ts = pd.date_range("2020-01-01", periods=n, freq="h")
    return pd.DataFrame({"ts": ts, "load": np.arange(n, dtype=float), "temp": 2.0 * np.arange(n)})


def _load(frame, policy="none", long_gaps="refuse"):
    return from_frame(
        frame,
        name="t",
        source="t.csv",
        time_column="ts",
        frequency="h",
        fill=FillPolicy.parse(policy, long_gaps),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("none", FillPolicy("none", 0)),
        ("carry:3", FillPolicy("carry", 3)),
        ("interpolate:6", FillPolicy("interpolate", 6)),
        ("interpolate", FillPolicy("interpolate", 1)),
        ("zero:24", FillPolicy("zero", 24)),
    ],
)
def test_policies_parse(text, expected):
    assert FillPolicy.parse(text) == expected


@pytest.mark.parametrize("text", ["mean:3", "carry:x", "carry:0", "none:2"])
def test_a_bad_policy_names_the_flag(text):
    with pytest.raises(DataError, match=re.escape(f"--fill {text!r}")):
        FillPolicy.parse(text)


def test_carry_repeats_the_last_value_for_short_runs():
    frame = _frame()
    frame.loc[10:12, "load"] = np.nan
    s = _load(frame, "carry:3")
    assert s.frame["load"].iloc[10:13].tolist() == [9.0, 9.0, 9.0]
    assert s.fill["filled_values"] == {"load": 3}


def test_interpolate_fills_absent_timestamps_on_a_straight_line():
    frame = _frame().drop(index=[100, 101, 102, 103])  # a 4-hour gap in the file
    s = _load(frame, "interpolate:4")
    assert len(s.frame) == 300 and s.fill["absent_timestamps"] == 4
    np.testing.assert_allclose(s.frame["load"].iloc[100:104], [100, 101, 102, 103])
    np.testing.assert_allclose(s.frame["temp"].iloc[100:104], [200, 202, 204, 206])


def test_a_run_longer_than_the_limit_is_refused_naming_flag_column_and_time():
    frame = _frame()
    frame.loc[40:46, "temp"] = np.nan
    with pytest.raises(DataError) as info:
        _load(frame, "interpolate:6")
    message = str(info.value)
    assert "column 'temp'" in message and "from 2020-01-02 16:00:00" in message
    assert "--fill interpolate:6" in message and "--long-gaps latest" in message


def test_long_gaps_latest_trains_on_the_data_after_the_last_long_gap():
    frame = _frame()
    frame.loc[40:46, "temp"] = np.nan  # 7 missing: too long
    frame.loc[60, "load"] = np.nan  # 1 missing: filled
    s = _load(frame, "interpolate:6", "latest")
    assert s.frame.index[0] == pd.Timestamp("2020-01-02 23:00")
    assert s.fill["dropped_before_long_gap"] == 47
    assert s.frame["load"].loc["2020-01-03 12:00"] == 60.0


def test_missing_values_at_the_edges_are_trimmed_not_invented():
    frame = _frame()
    frame.loc[0:1, "temp"] = np.nan
    frame.loc[299, "load"] = np.nan
    s = _load(frame, "carry:1")
    assert s.frame.index[0] == pd.Timestamp("2020-01-01 02:00") and len(s.frame) == 297
    assert s.fill["trimmed_rows"] == 3 and not s.frame.isna().any().any()


def test_the_default_refuses_and_says_which_flag_fills():
    frame = _frame()
    frame.loc[7, "load"] = np.nan
    with pytest.raises(DataError, match=re.escape("--fill interpolate:1 (or carry:1)")):
        _load(frame)


def test_a_row_with_every_value_empty_is_named_missing_not_absent():
    # The file has a line for 07:00 with no values (how a resample leaves an empty
    # period): the default names it as missing values, and the suggested flag fills it.
    frame = _frame()
    frame.loc[7, ["load", "temp"]] = np.nan
    with pytest.raises(DataError) as info:
        _load(frame)
    message = str(info.value)
    assert "column 'load': 1 value at 2020-01-01 07:00:00 missing" in message
    assert "absent" not in message and "--fill interpolate:1" in message
    assert _load(frame, "interpolate:1").frame["load"].iloc[7] == 7.0


def test_one_refusal_names_every_run_and_the_limit_that_fills_them_all():
    frame = _frame().drop(index=range(200, 205))  # 5 timestamps absent
    frame.loc[7, "load"] = np.nan
    frame.loc[40:42, "temp"] = np.nan
    with pytest.raises(DataError) as info:
        _load(frame)
    message = str(info.value)
    assert message.startswith("t.csv: column 'load': 1 value at 2020-01-01 07:00:00 missing")
    assert "3 such runs in all, the longest 5 steps from 2020-01-09 08:00:00" in message
    assert "--fill interpolate:5 (or carry:5)" in message
    assert len(_load(frame, "interpolate:5").frame) == 300  # that flag fills them all
    # Past a limit, the same: the longest names the limit, absent rows are named so.
    with pytest.raises(DataError) as info:
        _load(frame, "carry:2")
    message = str(info.value)
    assert "column 'temp': 3 values in a row from 2020-01-02 16:00:00" in message
    assert "2 such runs in all, the longest 5 steps" in message
    assert "pass --fill carry:5, or --long-gaps latest" in message
    with pytest.raises(DataError) as info:
        _load(_frame().drop(index=range(200, 205)), "carry:2")
    assert "5 timestamps in a row from 2020-01-09 08:00:00 to 2020-01-09 12:00:00 absent" in (
        str(info.value)
    )


def test_a_column_with_no_values_is_named_with_the_flag_that_leaves_it_out():
    frame = _frame().assign(empty=np.nan)
    for policy in ("none", "interpolate:3"):
        with pytest.raises(DataError, match=r"column 'empty' has no values; leave it out with"):
            _load(frame, policy)


def test_too_little_data_after_the_last_long_gap_says_what_was_dropped():
    frame = _frame()
    frame.loc[270:279, "temp"] = np.nan
    with pytest.raises(DataError, match=r"--long-gaps latest dropped the 280 rows up to the last"):
        _load(frame, "interpolate:6", "latest")


def test_zero_fills_counts_of_events_with_zero():
    # Hourly trip counts from events: an hour with no line had no trips.
    frame = _frame().drop(index=[100, 101])
    frame.loc[50, "temp"] = np.nan
    with pytest.raises(DataError, match=r"zero:2 writes 0, for counts of events"):
        _load(frame)
    s = _load(frame, "zero:2")
    assert len(s.frame) == 300 and s.fill["policy"] == "zero:2"
    assert (s.frame.iloc[100:102] == 0.0).all().all() and s.frame["temp"].iloc[50] == 0.0
    assert s.frame["load"].iloc[102] == 102.0  # values either side untouched
    with pytest.raises(DataError, match=r"longer than --fill zero:1 fills"):
        _load(frame, "zero:1")


def test_the_suggested_limit_leaves_out_runs_at_the_edges_which_are_trimmed():
    frame = _frame(400)
    frame.loc[:99, "temp"] = np.nan  # 100 at the start: trimmed by any fill
    frame.loc[200, "load"] = np.nan
    with pytest.raises(DataError) as info:
        _load(frame)
    message = str(info.value)
    assert "pass --fill interpolate:1 (or carry:1) to fill them (missing values at the" in message
    s = _load(frame, "interpolate:1")
    assert s.fill["trimmed_rows"] == 100 and s.frame["load"].loc["2020-01-09 08:00"] == 200.0


def test_a_test_split_too_short_after_the_last_long_gap_says_what_was_dropped():
    from training.config import preset
    from training.resolve import resolve

    frame = _frame(600)
    frame.loc[340:345, "temp"] = np.nan
    s = _load(frame, "interpolate:2", "latest")
    assert len(s.frame) == 254
    with pytest.raises(DataError, match=r"--long-gaps latest dropped the 346 rows up to the last"):
        resolve(preset("sensor"), s)
