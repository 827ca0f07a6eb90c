"""Many series in one file: a long-format CSV/Parquet with an id column (`--id-column`).

A `Panel` is the series of such a file, one `Series` per id, each read and checked by
the same rules as a single-series file (time order, grid, `--fill`), with the id in
every message. All series must share the columns and the frequency: one global model is
trained across them (training/global_train.py) and served with one stream per series.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from training.data import DataError, FillPolicy, Series, from_frame, read_table

MAX_SERIES = 500  # one streamed validation pass per series per epoch; beyond, sample


@dataclass(frozen=True)
class Panel:
    name: str
    source: str
    id_column: str
    ids: tuple[str, ...]
    series: tuple[Series, ...]  # in the order of ids

    @property
    def frequency(self) -> str:
        return self.series[0].frequency

    def shortest(self) -> Series:
        """Every length check runs on this one, so every setting fits every series."""
        return min(self.series, key=lambda s: len(s.frame))


def panel_from_frame(
    frame: pd.DataFrame,
    *,
    name: str,
    source: str,
    id_column: str,
    time_column: str,
    value_columns: list[str] | None = None,
    frequency: str | None = None,
    target: str | None = None,
    fill: FillPolicy | None = None,
) -> Panel:
    if id_column not in frame.columns:
        raise DataError(
            f"{source}: no id column {id_column!r} (--id-column); found {list(frame.columns)}"
        )
    if frame[id_column].isna().any():
        raise DataError(f"{source}: the id column {id_column!r} has empty values")
    if value_columns is None:
        value_columns = [c for c in frame.columns if c not in (time_column, id_column)]
    ids = tuple(str(i) for i in pd.unique(frame[id_column].astype(str)))
    if len(ids) < 2:
        raise DataError(
            f"{source}: --id-column {id_column!r} holds one series ({ids[0] if ids else 'none'});"
            " drop --id-column to train on a single series"
        )
    if len(ids) > MAX_SERIES:
        raise DataError(f"{source}: {len(ids)} series; at most {MAX_SERIES} are supported")
    keys = frame[id_column].astype(str)
    series = []
    for key in ids:
        part = frame[keys == key].drop(columns=[id_column])
        # The source names the id, so every error says which series it is about.
        series.append(
            from_frame(
                part,
                name=f"{name}[{key}]",
                source=f"{source} ({id_column}={key})",
                time_column=time_column,
                value_columns=value_columns,
                frequency=frequency,
                target=target,
                fill=fill,
            )
        )
    frequencies = {s.frequency for s in series}
    if len(frequencies) > 1:
        found = ", ".join(f"{k}: {s.frequency}" for k, s in zip(ids, series, strict=True))
        raise DataError(
            f"{source}: the series have different frequencies ({found}); one model needs "
            "one frequency: pass --frequency, or train them apart"
        )
    return Panel(name, source, id_column, ids, tuple(series))


def load_panel(path: str | Path, *, id_column: str, **options: object) -> Panel:
    """A long-format CSV or Parquet file: an id column, a time column, value columns."""
    path = Path(path)
    frame = read_table(path)
    return panel_from_frame(
        frame,
        name=path.stem,
        source=str(path),
        id_column=id_column,
        **options,  # type: ignore[arg-type]
    )
