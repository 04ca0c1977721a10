"""Statistics periods: which clicks a period covers and how they are grouped. Pure.

All, Day, Week, Month and Year. Day is the last 24 hours by hour, Week the
last 7 days and Month the last 30 days by day, Year the last 12 months by
month. All starts at the first click and is grouped by hour, day or month
depending on how long ago that was. Times are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

PERIODS = ("all", "day", "week", "month", "year")


@dataclass(frozen=True, slots=True)
class Window:
    since: datetime | None  # None: every click
    start: datetime  # first bucket
    unit: str  # hour, day or month


def truncate(moment: datetime, unit: str) -> datetime:
    if unit == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    if unit == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def advance(moment: datetime, unit: str) -> datetime:
    if unit == "hour":
        return moment + timedelta(hours=1)
    if unit == "day":
        return moment + timedelta(days=1)
    return (moment.replace(day=1) + timedelta(days=32)).replace(day=1)


def _months_back(moment: datetime, months: int) -> datetime:
    start = truncate(moment, "month")
    for _ in range(months):
        start = (start - timedelta(days=1)).replace(day=1)
    return start


def window(period: str, now: datetime, first_click: datetime | None = None) -> Window:
    """The window of ``period`` at ``now`` (UTC); All needs the first click's time."""
    if period == "day":
        start = truncate(now - timedelta(hours=23), "hour")
        return Window(start, start, "hour")
    if period == "week":
        start = truncate(now - timedelta(days=6), "day")
        return Window(start, start, "day")
    if period == "month":
        start = truncate(now - timedelta(days=29), "day")
        return Window(start, start, "day")
    if period == "year":
        start = _months_back(now, 11)
        return Window(start, start, "month")
    first = first_click or now
    span = now - first
    unit = "hour" if span <= timedelta(days=2) else "day" if span <= timedelta(days=92) else "month"
    return Window(None, truncate(first, unit), unit)


def series(counts: dict[datetime, int], win: Window, now: datetime) -> list[tuple[datetime, int]]:
    """One point per bucket from the window's start to ``now``, zero where nothing happened."""
    points = []
    moment = win.start
    while moment <= now:
        points.append((moment, counts.get(moment, 0)))
        moment = advance(moment, win.unit)
    return points
