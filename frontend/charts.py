"""Chart geometry for server-rendered SVG (templates in ``frontend/charts/``).

Functions take plain numbers and return coordinates in a fixed ``viewBox``; the
SVG scales with CSS, so one geometry serves wide and narrow screens. Every chart
carries a text summary for screen readers, and pages show the numbers in a table
next to it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PALETTE = ("series-0", "series-1", "series-2", "series-3")


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class Line:
    name: str
    css: str
    points: str  # "x,y x,y …" for <polyline>
    dots: list[tuple[float, float]]


@dataclass(frozen=True)
class Frame:
    width: int
    height: int
    left: int
    right: int
    top: int
    bottom: int

    @property
    def plot_width(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_bottom(self) -> int:
        return self.height - self.bottom


@dataclass(frozen=True)
class LineChart:
    title: str
    frame: Frame
    lines: list[Line]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    summary: str


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1000 or abs(value) < 0.001:
        return f"{value:.2e}"
    return f"{value:.3g}"


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def line_chart(
    *, title: str, series: dict[str, Sequence[tuple[float, float]]], width: int = 360,
    height: int = 190,
) -> LineChart | None:
    """One chart, several named series of (x, y) points; None when there is nothing."""
    points = [p for values in series.values() for p in values]
    if not points:
        return None
    frame = Frame(width, height, left=52, right=12, top=12, bottom=30)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_lo, x_hi = min(xs), max(xs)
    y_lo, y_hi = min(ys), max(ys)
    if y_lo == y_hi:
        y_lo, y_hi = y_lo - 1, y_hi + 1
    sx = _scale(x_lo, x_hi, frame.left, frame.width - frame.right)
    sy = _scale(y_lo, y_hi, frame.plot_bottom, frame.top)
    lines = []
    for k, (name, values) in enumerate(series.items()):
        coords = [(round(sx(x), 1), round(sy(y), 1)) for x, y in values]
        lines.append(Line(name, PALETTE[k % len(PALETTE)],
                          " ".join(f"{x},{y}" for x, y in coords), coords))
    x_ticks = [Tick(round(sx(v), 1), _fmt(v)) for v in _ticks(x_lo, x_hi, integer=True)]
    y_ticks = [Tick(round(sy(v), 1), _fmt(v)) for v in _ticks(y_lo, y_hi)]
    last = "; ".join(f"{name} last {_fmt(values[-1][1])}" for name, values in series.items()
                     if values)
    summary = f"{title}: x from {_fmt(x_lo)} to {_fmt(x_hi)}, y from {_fmt(min(ys))} to " \
              f"{_fmt(max(ys))}; {last}."
    return LineChart(title, frame, lines, x_ticks, y_ticks, summary)


def _ticks(lo: float, hi: float, *, count: int = 4, integer: bool = False) -> list[float]:
    if hi <= lo:
        return [lo]
    values = [lo + (hi - lo) * i / (count - 1) for i in range(count)]
    if integer:
        values = sorted({round(v) for v in values})
    return values


@dataclass(frozen=True)
class BiasBar:
    label: str
    y: float
    x: float
    width: float
    ci_x1: float
    ci_x2: float
    text: str
    flagged: bool


@dataclass(frozen=True)
class BiasChart:
    frame: Frame
    center_x: float
    bar_height: int
    bars: list[BiasBar]
    ticks: list[Tick]
    summary: str


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def position_bias_chart(rows: Sequence, *, alpha: float = 0.05) -> BiasChart | None:
    """Share of decisive picks that went to the LEFT response, per annotator.

    ``rows`` are ``quality.PositionBias``. Bars grow from the 50% line; whiskers are
    95% Wilson intervals; a bar is flagged when the binomial test has p < ``alpha``.
    """
    if not rows:
        return None
    bar_height, gap = 18, 12
    frame = Frame(880, 28 + len(rows) * (bar_height + gap) + 24, left=130, right=230, top=20,
                  bottom=24)
    sx = _scale(0.0, 1.0, frame.left, frame.left + frame.plot_width)
    bars = []
    for i, row in enumerate(rows):
        x = sx(row.left_share)
        low, high = wilson_interval(row.left_picks, row.n_decisive)
        text = f"{row.left_share:.0%} left · n={row.n_decisive} · p={row.p_value:.2g}"
        bars.append(BiasBar(
            label=row.username, y=frame.top + i * (bar_height + gap),
            x=round(min(x, sx(0.5)), 1), width=round(max(abs(x - sx(0.5)), 1.5), 1),
            ci_x1=round(sx(low), 1), ci_x2=round(sx(high), 1), text=text,
            flagged=row.p_value < alpha,
        ))
    ticks = [Tick(round(sx(v), 1), f"{v:.0%}") for v in (0, 0.25, 0.5, 0.75, 1)]
    flagged = [b.label for b in bars if b.flagged]
    summary = "Left-pick share per annotator. " + (
        f"Significant position bias: {', '.join(flagged)}." if flagged else
        "No annotator differs significantly from 50%."
    )
    return BiasChart(frame, round(sx(0.5), 1), bar_height, bars, ticks, summary)


@dataclass(frozen=True)
class Column:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int
    show_label: bool


@dataclass(frozen=True)
class ColumnChart:
    frame: Frame
    columns: list[Column]
    y_max: int
    summary: str


def column_chart(points: Sequence[tuple[str, int]], *, title: str) -> ColumnChart | None:
    if not points:
        return None
    frame = Frame(560, 160, left=36, right=8, top=10, bottom=26)
    top = max(1, max(value for _, value in points))
    slot = frame.plot_width / len(points)
    sy = _scale(0, top, frame.plot_bottom, frame.top)
    step = max(1, math.ceil(len(points) / 7))
    columns = [
        Column(
            x=round(frame.left + i * slot + slot * 0.15, 1), y=round(sy(value), 1),
            width=round(slot * 0.7, 1), height=round(frame.plot_bottom - sy(value), 1),
            label=label, value=value, show_label=(len(points) - 1 - i) % step == 0,
        )
        for i, (label, value) in enumerate(points)
    ]
    total = sum(value for _, value in points)
    return ColumnChart(frame, columns, top, f"{title}: {total} in {len(points)} days.")


@dataclass(frozen=True)
class Interval:
    label: str
    y: float
    x: float
    x1: float
    x2: float
    text: str
    has_interval: bool = True
    provisional: bool = False


@dataclass(frozen=True)
class IntervalChart:
    frame: Frame
    reference_x: float | None
    rows: list[Interval]
    ticks: list[Tick]
    summary: str


def _interval_text(row) -> str:
    text = f"{row.rating:.0f}"
    if getattr(row, "has_interval", True):
        text += f" ({row.ci_low:.0f}–{row.ci_high:.0f})"
    return text + (" provisional" if getattr(row, "provisional", False) else "")


def rating_chart(rows: Sequence, *, reference: float = 1000.0) -> IntervalChart | None:
    """Leaderboard ratings with their bootstrap intervals (``LeaderboardRow``s, or the
    page's ``BoardRow``s: no whisker without an interval, provisional rows marked)."""
    if not rows:
        return None
    lo = min([r.ci_low for r in rows] + [reference])
    hi = max([r.ci_high for r in rows] + [reference])
    pad = max(10.0, (hi - lo) * 0.05)
    lo, hi = lo - pad, hi + pad
    frame = Frame(880, 26 + len(rows) * 30 + 24, left=170, right=190, top=20, bottom=24)
    sx = _scale(lo, hi, frame.left, frame.left + frame.plot_width)
    items = [
        Interval(row.name, frame.top + i * 30 + 9, round(sx(row.rating), 1),
                 round(sx(row.ci_low), 1), round(sx(row.ci_high), 1), _interval_text(row),
                 has_interval=getattr(row, "has_interval", True),
                 provisional=getattr(row, "provisional", False))
        for i, row in enumerate(rows)
    ]
    ticks = [Tick(round(sx(v), 1), f"{v:.0f}") for v in _ticks(lo, hi, count=5)]
    best = rows[0]
    summary = f"{len(rows)} models; best {best.name} at {best.rating:.0f}."
    return IntervalChart(frame, round(sx(reference), 1), items, ticks, summary)
