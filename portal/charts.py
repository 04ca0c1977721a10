"""Charts drawn on the server as SVG: geometry here (pure), markup in templates/macros/charts.html.

No script and no CDN: the page carries its charts. Bars take the brand colour
through CSS classes (``.chart .bar``), since the Content-Security-Policy allows
no inline style.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 600
HEIGHT = 200
AXIS = 24  # room for the labels under the bars
LEFT = 36  # room for the values left of the bars
TOP = 8  # room for the top value's label
MAX_BAR = 40  # a bar stays a bar when there are few of them


@dataclass(frozen=True, slots=True)
class Column:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str  # the bucket's name (tooltip)
    tick: str  # shown under the bar, or "" (every few bars only)


@dataclass(frozen=True, slots=True)
class ColumnChart:
    columns: tuple[Column, ...]
    grid: tuple[tuple[float, int], ...]  # (y, value) of the horizontal lines
    width: int
    height: int
    total: int

    @property
    def empty(self) -> bool:
        return self.total == 0


def _nice_top(value: int) -> int:
    """A round axis maximum at or above ``value`` (1, 2, 5 × 10^n)."""
    if value <= 4:
        return 4
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor * 4 >= value:
                return step * factor * 4
        step *= 10


def column_chart(points: Sequence[tuple[str, int]], *, width: int = WIDTH, height: int = HEIGHT,
                 max_ticks: int = 8) -> ColumnChart:
    """Bars for ``(label, value)`` points in order; a label under every few bars."""
    top = _nice_top(max((v for _, v in points), default=0))
    plot_height = height - AXIS - TOP
    plot_width = width - LEFT
    slot = plot_width / max(len(points), 1)
    gap = min(slot * 0.2, 4.0)
    every = max(1, -(-len(points) // max_ticks))
    columns = []
    for index, (label, value) in enumerate(points):
        bar_height = plot_height * value / top
        bar_width = min(max(slot - gap, 1.0), MAX_BAR)
        columns.append(Column(
            x=round(LEFT + index * slot + (slot - bar_width) / 2, 2), y=round(TOP + plot_height - bar_height, 2),
            width=round(bar_width, 2), height=round(bar_height, 2), value=value, label=label,
            tick=label if index % every == 0 else "",
        ))
    grid = tuple((round(TOP + plot_height - plot_height * i / 4, 2), top * i // 4) for i in range(5))
    return ColumnChart(tuple(columns), grid, width, height, sum(v for _, v in points))


@dataclass(frozen=True, slots=True)
class Share:
    name: str
    value: int
    percent: float  # of the total, for the label
    width: float  # of the widest bar, 0–100, for the bar


def shares(items: Sequence[tuple[str, int]], *, limit: int = 8, other: str = "Other") -> list[Share]:
    """The biggest ``limit`` items, the rest summed as ``other``, with their share of the total."""
    items = list(items)
    if len(items) > limit:
        rest = sum(v for _, v in items[limit - 1:])
        merged: dict[str, int] = {}
        for name, value in items[: limit - 1]:
            merged[name] = merged.get(name, 0) + value
        merged[other] = merged.get(other, 0) + rest
        items = sorted(merged.items(), key=lambda kv: -kv[1])
    total = sum(v for _, v in items) or 1
    widest = max((v for _, v in items), default=0) or 1
    return [Share(name, value, round(100 * value / total, 1), round(100 * value / widest, 2))
            for name, value in items]
