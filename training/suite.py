"""The accuracy suite: the default recipes on real public series of different kinds.

    python -m training suite                  # all cases, ~20 minutes on 2 cores
    python -m training suite --cases pedestrian,msft --out runs/suite

Each case reads a packaged CSV the way a user's file is read (time column, value column,
the --fill the data needs and nothing else), trains the default recipe for its kind
(the sensor recipe for sensors and load, sp500 for prices) with everything derived from the
frequency, evaluates it against the baselines on the same origins, and judges it. The
one difference from a user's run is the training budget (SUITE_TRAIN_SECONDS per case),
which keeps the whole suite within half an hour. One table: runs/suite/suite.md.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from training.config import preset
from training.data import FillPolicy, Series, from_frame, load
from training.pipeline import evaluation
from training.train import train
from training.verdict import display

SUITE_TRAIN_SECONDS = 150.0


def _packaged_csv(package: str, name: str) -> pd.DataFrame:
    import importlib

    folder = Path(importlib.import_module(package).__file__ or "").parent
    return pd.read_csv(folder / name, skipinitialspace=True)


def _epf_load(weeks: int | None = None) -> pd.DataFrame:
    """Hourly French system load, 2015-2016. The EPF set repeats the same column under
    both of its zones (FR and BE: French load is an input of both price series)."""
    frame = _packaged_csv("tsdata.fpppy", "EPF_FR_BE.csv")
    frame = frame[frame["unique_id"] == "FR"][["ds", "system_load"]]
    return frame.iloc[-weeks * 168 :] if weeks else frame


def _pedestrian(sensor: str) -> pd.DataFrame:
    frame = _packaged_csv("tsdata.fpp3", "pedestrian.csv")
    return frame[frame["Sensor"] == sensor][["Date_Time", "Count"]]


def _warsaw(column: str) -> pd.DataFrame:
    frame = _packaged_csv("tsdata.fpp3", "warsaw_air_quality.csv")
    frame["date"] = pd.to_datetime(frame["date"], format="%m/%d/%y")  # m/d/yy, unsorted
    return frame[["date", column]]


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    recipe: str  # the preset whose recipe a user of this kind of data would run
    read: Callable[[], pd.DataFrame] | None  # a user-like file; None = a packaged key
    time_column: str = ""
    fill: str = "none"
    long_gaps: str = "refuse"

    def series(self) -> Series:
        if self.read is None:
            return load(self.name)
        return from_frame(
            self.read(),
            name=self.name,
            source=f"suite:{self.name}",
            time_column=self.time_column,
            fill=FillPolicy.parse(self.fill, self.long_gaps),
        )


CASES: dict[str, Case] = {
    c.name: c
    for c in (
        Case("fr-load", "hourly load (France)", "sensor", lambda: _epf_load(), "ds"),
        Case(
            "pedestrian",
            "hourly counts (Southern Cross Station)",
            "sensor",
            lambda: _pedestrian("Southern Cross Station"),
            "Date_Time",
            fill="interpolate:2",
        ),
        Case(
            "warsaw-pm25",
            "daily air quality (Warsaw PM2.5)",
            "sensor",
            lambda: _warsaw("pm25"),
            "date",
            fill="interpolate:18",
            long_gaps="latest",
        ),
        Case("msft", "business-day prices (MSFT)", "sp500", None),
        Case(
            "fr-load-5w",
            "the last 5 weeks of it (a short series)",
            "sensor",
            lambda: _epf_load(weeks=5),
            "ds",
        ),
    )
}


def run_case(case: Case, quick: bool = False) -> dict[str, Any]:
    """Train and evaluate one case; quick = a tiny network and no statsforecast refits."""
    series = case.series()
    config = preset(case.recipe).replace(
        name=case.name,
        dataset=case.name,
        fill=case.fill,
        max_train_seconds=SUITE_TRAIN_SECONDS,
    )
    if quick:
        config = config.replace(
            hidden=8, layers=1, epochs=2, max_rows=1500, baselines=_quick(case.recipe)
        )
    started = time.monotonic()
    trained = train(config, series=series, progress=False)
    scores, *_ = evaluation(trained)
    return {
        "case": case.name,
        "kind": case.kind,
        "frequency": series.frequency,
        "rows": trained.split.n,
        "fill": case.fill + ("" if case.long_gaps == "refuse" else f", {case.long_gaps}"),
        "horizon": trained.config.horizon,
        "memory": trained.model.spec.memory,
        "bytes_per_stream": trained.model.spec.state_bytes(),
        "seconds": round(time.monotonic() - started),
        "model": scores["model"],
        "baselines": scores["baselines"],
        "verdict": scores["verdict"],
    }


def _quick(recipe: str) -> tuple[str, ...]:
    return ("seasonal_naive",) if preset(recipe).mode == "level" else ("random_walk", "garch")


def table(results: list[dict]) -> str:
    """Per series: the verdict metric of the model and of every baseline, and the verdict."""
    lines = [
        "| series | kind | freq | rows | fill | metric | model | baselines | cov. 80% | verdict |",
        "| --- | --- | --- | ---: | --- | --- | ---: | --- | ---: | --- |",
    ]
    for r in results:
        metric = r["verdict"]["metric"]
        others = "; ".join(f"{display(n)} {b[metric]:.4g}" for n, b in r["baselines"].items())
        lines.append(
            f"| {r['case']} | {r['kind']} | {r['frequency']} | {r['rows']} | {r['fill']} | "
            f"{metric.upper()} | {r['model'][metric]:.4g} | {others} | "
            f"{r['model']['coverage_80']:.0%} | {r['verdict']['text']} |"
        )
    return "\n".join(lines)


def run(names: list[str], out: Path, quick: bool = False) -> list[dict]:
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit(f"unknown suite case(s) {unknown}; known: {', '.join(CASES)}")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for name in names:
        print(f"suite: {name} ...", flush=True)
        result = run_case(CASES[name], quick)
        print(f"suite: {name}: {result['verdict']['text']} ({result['seconds']} s)", flush=True)
        results.append(result)
        (out / "suite.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "suite.md").write_text(table(results) + "\n")
    return results


def main(args: argparse.Namespace) -> int:
    names = args.cases.split(",") if getattr(args, "cases", None) else list(CASES)
    out = Path(args.runs) / "suite"
    results = run(names, out, quick=getattr(args, "quick", False))
    print(table(results))
    print(f"written: {out / 'suite.md'}")
    return 0
