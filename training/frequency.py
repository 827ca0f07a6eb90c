"""Periods in time for a data frequency: how many steps make a day, a week, a year.

Everything a user thinks of in time (a daily season, a one-day horizon, "same time last
week") is turned into steps here, from the data's pandas frequency alias, so a config
never counts in the steps of the data set it was first tuned on.

Business days ("B") are counted as trading days: a week is 5 steps, a year 260.
"""

from __future__ import annotations

import pandas as pd

DAY = 86_400
WEEK = 7 * DAY
YEAR = 31_556_952  # mean Gregorian year, as the day_of_year time feature uses


class UnsupportedFrequency(ValueError):
    """A frequency whose steps have no fixed length (months, quarters, years, business
    hours) or are shorter than a second: the service steps streams by a fixed period
    (or by business days), so a model of such steps could not be served."""


def step_seconds(frequency: str) -> int:
    """The length of one step; a business day counts as one day. A week anchored on a
    weekday ("W-SUN", what pandas infers for weekly data) is 7 days."""
    if is_business(frequency):
        return DAY
    try:
        offset = pd.tseries.frequencies.to_offset(frequency)
    except ValueError:
        raise UnsupportedFrequency(f"unknown frequency {frequency!r}") from None
    if isinstance(offset, pd.offsets.Week):
        seconds = float(offset.n * WEEK)
    elif isinstance(offset, pd.offsets.Day):  # not a Tick from pandas 3 on
        seconds = float(offset.n * DAY)
    elif _is_tick(offset):
        seconds = pd.Timedelta(offset).total_seconds()
    else:
        raise UnsupportedFrequency(
            f"frequency {frequency!r} has steps of varying length (calendar months, "
            "quarters, years, business hours or several business days); a model steps by "
            "a fixed period (e.g. 5min, h, D, W) or by one business day (B): resample the "
            "data to one of those"
        )
    if seconds < 1 or not seconds.is_integer():
        raise UnsupportedFrequency(
            f"frequency {frequency!r}: a step must be a whole number of seconds, at least 1"
        )
    return int(seconds)


def is_fixed(frequency: str) -> bool:
    """Steps of one fixed length from any start (seconds to days), as opposed to a
    calendar grid (business days, weeks anchored on a weekday) whose steps fall on dates."""
    return _is_tick(pd.tseries.frequencies.to_offset(frequency))


def _is_tick(offset: pd.DateOffset) -> bool:
    return isinstance(offset, pd.offsets.Tick | pd.offsets.Day)


def is_business(frequency: str) -> bool:
    return frequency.upper() in ("B", "1B", "C")


def is_intraday(frequency: str) -> bool:
    return not is_business(frequency) and step_seconds(frequency) < DAY


def steps_in(period_seconds: int, frequency: str) -> int | None:
    """Whole steps in a period (day, week, year), or None if the period is no multiple."""
    if is_business(frequency):
        return {DAY: 1, WEEK: 5, YEAR: 260}.get(period_seconds)
    step = step_seconds(frequency)
    if period_seconds == YEAR and step == DAY:
        return 365  # 365.25 days; the seasonal naive needs whole steps
    if period_seconds % step:
        return None
    return period_seconds // step


def default_seasons(frequency: str) -> tuple[int, ...]:
    """The seasonal periods, in steps, a series of this frequency usually has.

    Intraday: a day and a week. Daily: a week and a year. Business days: a week.
    Weekly and longer: a year when it is a whole number of steps.
    """
    if is_business(frequency):
        return (5,)
    step = step_seconds(frequency)
    periods: tuple[int, ...]
    if step < DAY:
        periods = (DAY, WEEK)
    elif step == DAY:
        periods = (WEEK, YEAR)
    else:
        periods = (YEAR,)
    seasons = [steps_in(p, frequency) for p in periods]
    return tuple(s for s in seasons if s and s > 1)


def default_horizon(frequency: str) -> int:
    """One day of intraday data, one week of daily data, 5 business days, else 4 steps."""
    if is_business(frequency):
        return 5
    step = step_seconds(frequency)
    if step < DAY:
        return DAY // step if DAY % step == 0 else max(1, round(DAY / step))
    if step == DAY:
        return 7
    return 4


def default_time_features(frequency: str, mode: str) -> tuple[str, ...]:
    """Clock features that can vary between steps of this frequency."""
    if mode == "returns":
        return ()  # prices: the calendar adds noise, not signal, to daily returns
    if is_business(frequency):
        return ("day_of_week",)
    step = step_seconds(frequency)
    if step < DAY:
        return ("time_of_day", "day_of_week")
    if step == DAY:
        return ("day_of_week", "day_of_year")
    return ("day_of_year",)


def label(steps: int, frequency: str) -> str:
    """A season in time for baseline names: 48 half-hours -> '1d', 336 -> '1w'."""
    if is_business(frequency):
        if steps % 5 == 0:
            return f"{steps // 5}w"
        return f"{steps}bd"
    seconds = steps * step_seconds(frequency)
    if seconds == 365 * DAY:
        return "1y"
    for unit, size in (("w", WEEK), ("d", DAY), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{steps}steps"


def steps_of_label(text: str, frequency: str) -> int:
    """The inverse of label(): '1w' -> 336 for 30-minute data. ValueError if unknown."""
    number = "".join(ch for ch in text if ch.isdigit())
    unit = text[len(number) :]
    if not number:
        raise ValueError(f"not a period: {text!r} (use e.g. 1d, 1w, 24h, 48steps)")
    count = int(number)
    if unit == "steps":
        return count
    if is_business(frequency):
        sizes = {"w": 5, "bd": 1, "d": 1}
        if unit in sizes:
            return count * sizes[unit]
        raise ValueError(f"period {text!r} is not whole business days")
    if unit == "y":
        steps = steps_in(YEAR, frequency)
        if steps is None:
            raise ValueError(f"a year is not a whole number of {frequency!r} steps")
        return count * steps
    seconds = {"w": WEEK, "d": DAY, "h": 3600, "min": 60}.get(unit)
    step = step_seconds(frequency)
    if seconds is None or (count * seconds) % step:
        raise ValueError(f"period {text!r} is not a whole number of {frequency!r} steps")
    return count * seconds // step


def words(text: str) -> str:
    """'1w' -> '1 week', '2d' -> '2 days', '48steps' -> '48 steps'."""
    number = "".join(ch for ch in text if ch.isdigit())
    unit = {
        "w": "week",
        "d": "day",
        "h": "hour",
        "min": "minute",
        "y": "year",
        "bd": "business day",
        "steps": "step",
    }.get(text[len(number) :], text[len(number) :])
    return f"{number} {unit}{'' if number == '1' else 's'}"
