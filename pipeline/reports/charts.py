"""The report's charts as SVG, drawn here on the server so they show the same in a page, a saved
file and a printed PDF, offline: bars (records per officer or dock, on time and late), a line
(records per month and the on-time rate) and a histogram (working days late).

Every text drawn (names of officers, docks and cases are hostile input) is escaped for XML, and
cut to a length that fits; nothing is given as a style attribute or element (the pages' security
policy allows no inline style), only presentation attributes. The fonts named first are those that
hold Chinese (Debian's fonts-noto-cjk, then WenQuanYi), so Chinese labels render wherever one is
installed.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

FONTS = "'Noto Sans CJK SC', 'Noto Sans SC', 'Source Han Sans SC', 'WenQuanYi Micro Hei', 'Microsoft YaHei', sans-serif"
ON_TIME = "#2e7d32"
LATE = "#c62828"
OTHER = "#9e9e9e"
LINE = "#1565c0"
RATE = "#ef6c00"
AXIS = "#555555"
LABEL_CHARS = 16  # characters of a label drawn at most; the whole of it is in the bar's title
WIDTH = 720


def text(value: object, limit: int = LABEL_CHARS) -> str:
    """``value`` as escaped XML text, cut to ``limit`` characters (an ellipsis marks the cut);
    characters XML cannot hold (controls) are dropped."""
    shown = "".join(ch for ch in str(value) if ch.isprintable())
    if len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return escape(shown)


def _title(value: object) -> str:
    return f"<title>{text(value, 500)}</title>"


def _open(width: int, height: int, label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family={quoteattr(FONTS)} font-size="12" aria-label={quoteattr(label)}>'
        f"{_title(label)}"
    )


def _nice_top(value: float) -> float:
    """A round number at or above ``value`` for the top of an axis."""
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 <= value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if value <= step * factor:
            return step * factor
    return step * 10


@dataclass(frozen=True)
class Bar:
    """One bar: its label, and the parts stacked in it (on time, late, neither)."""

    label: str
    on_time: int
    late: int
    other: int = 0

    @property
    def total(self) -> int:
        return self.on_time + self.late + self.other


def bar_chart(bars: Sequence[Bar], title: str, *, legend: tuple[str, str, str] = ("on time", "late", "other")) -> str:
    """Horizontal stacked bars, one per ``bars`` entry (in the order given): on time, late and
    records whose deadline is unknown. Each bar is a ``<g class="bar">``."""
    row, left, top = 24, 150, 30
    height = top + row * max(len(bars), 1) + 40
    top_value = _nice_top(max((b.total for b in bars), default=0))
    span = WIDTH - left - 60
    parts = [_open(WIDTH, height, title)]
    parts.append(f'<text x="{left}" y="18" font-weight="bold">{text(title, 80)}</text>')
    for index, bar in enumerate(bars):
        y = top + index * row
        parts.append(f'<g class="bar">{_title(f"{bar.label}: {bar.on_time} / {bar.late} / {bar.other}")}')
        parts.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{text(bar.label)}</text>')
        x = float(left)
        for value, colour in ((bar.on_time, ON_TIME), (bar.late, LATE), (bar.other, OTHER)):
            if value:
                width = span * value / top_value
                parts.append(
                    f'<rect x="{x:.1f}" y="{y + 3}" width="{width:.1f}" height="{row - 6}" fill="{colour}"></rect>'
                )
                x += width
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 15}">{bar.total}</text></g>')
    axis_y = top + row * max(len(bars), 1) + 4
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{left + span}" y2="{axis_y}" stroke="{AXIS}"></line>')
    parts.append(f'<text x="{left}" y="{axis_y + 14}" text-anchor="middle">0</text>')
    parts.append(f'<text x="{left + span}" y="{axis_y + 14}" text-anchor="middle">{top_value:g}</text>')
    parts.append(_legend(((legend[0], ON_TIME), (legend[1], LATE), (legend[2], OTHER)), axis_y + 30, left))
    parts.append("</svg>")
    return "".join(parts)


def _legend(entries: Sequence[tuple[str, str]], y: int, x: int) -> str:
    parts = []
    for label, colour in entries:
        parts.append(f'<rect x="{x}" y="{y - 10}" width="10" height="10" fill="{colour}"></rect>')
        parts.append(f'<text x="{x + 14}" y="{y}">{text(label, 30)}</text>')
        x += 30 + _text_width(label[:30])
    return "".join(parts)


def _text_width(label: str) -> int:
    """About how wide ``label`` is drawn at 12 px: Chinese characters take twice a Latin one's room."""
    return sum(12 if unicodedata.east_asian_width(c) in "WF" else 7 for c in label)


def line_chart(
    points: Sequence[tuple[str, int, float | None]],
    title: str,
    *,
    legend: tuple[str, str] = ("records", "on-time rate"),
) -> str:
    """Records per month (a line against the left axis) and the on-time rate (0 to 100 %, a line
    against the right axis; a month without a known deadline leaves a gap). ``points`` are
    (month, records, rate). Each month's point is a ``<circle class="point">``."""
    left, right, top, bottom = 50, 50, 30, 60
    height = 280
    plot_w, plot_h = WIDTH - left - right, height - top - bottom
    top_value = _nice_top(max((n for _, n, _ in points), default=0))
    step = plot_w / max(len(points) - 1, 1)
    parts = [_open(WIDTH, height, title)]
    parts.append(f'<text x="{left}" y="18" font-weight="bold">{text(title, 80)}</text>')
    base = top + plot_h
    parts.append(f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="{AXIS}"></line>')
    parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="{AXIS}"></line>')
    parts.append(f'<line x1="{left + plot_w}" y1="{top}" x2="{left + plot_w}" y2="{base}" stroke="{AXIS}"></line>')
    parts.append(f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{top_value:g}</text>')
    parts.append(f'<text x="{left + plot_w + 4}" y="{top + 4}">100%</text>')
    parts.append(f'<text x="{left + plot_w + 4}" y="{base}">0%</text>')
    volume: list[str] = []
    rate_runs: list[list[str]] = [[]]
    every = max(1, len(points) // 12)  # at most about twelve month labels
    for index, (month, count, rate) in enumerate(points):
        x = left + (step * index if len(points) > 1 else plot_w / 2)
        y = base - plot_h * count / top_value
        volume.append(f"{x:.1f},{y:.1f}")
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{LINE}">'
            f"{_title(f'{month}: {count}')}</circle>"
        )
        if rate is None:
            rate_runs.append([])
        else:
            rate_y = base - plot_h * rate
            rate_runs[-1].append(f"{x:.1f},{rate_y:.1f}")
            parts.append(
                f'<circle class="rate-point" cx="{x:.1f}" cy="{rate_y:.1f}" r="2.5" fill="{RATE}">'
                f"{_title(f'{month}: {rate:.1%}')}</circle>"
            )
        if index % every == 0:
            parts.append(f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle">{text(month, 7)}</text>')
    if volume:
        parts.append(f'<polyline points="{" ".join(volume)}" fill="none" stroke="{LINE}" stroke-width="2"></polyline>')
    for run in rate_runs:
        if run:
            parts.append(
                f'<polyline class="rate" points="{" ".join(run)}" fill="none" stroke="{RATE}" stroke-width="2" '
                f'stroke-dasharray="6 3"></polyline>'
            )
    parts.append(_legend(((legend[0], LINE), (legend[1], RATE)), height - 14, left))
    parts.append("</svg>")
    return "".join(parts)


def histogram(counts: dict[int, int], title: str, *, axis: str = "working days late") -> str:
    """Late records by working days late: one ``<rect class="bin">`` per number of days from 0 to
    the worst (empty bins drawn at zero height, so the gaps show)."""
    left, top, bottom = 50, 30, 50
    height = 240
    worst = max(counts, default=-1)
    days = list(range(0, worst + 1)) if worst >= 0 else []
    plot_w, plot_h = WIDTH - left - 20, height - top - bottom
    top_value = _nice_top(max(counts.values(), default=0))
    width = plot_w / max(len(days), 1)
    every = math.ceil((_text_width(str(worst)) + 8) / width)  # a day's number every so many bins, apart
    base = top + plot_h
    parts = [_open(WIDTH, height, title)]
    parts.append(f'<text x="{left}" y="18" font-weight="bold">{text(title, 80)}</text>')
    for index, day in enumerate(days):
        n = counts.get(day, 0)
        h = plot_h * n / top_value
        x = left + index * width
        parts.append(
            f'<rect class="bin" x="{x + 1:.1f}" y="{base - h:.1f}" width="{max(width - 2, 1):.1f}" height="{h:.1f}" '
            f'fill="{LATE}">{_title(f"{day}: {n}")}</rect>'
        )
        if index % every == 0:
            parts.append(f'<text x="{x + width / 2:.1f}" y="{base + 14}" text-anchor="middle">{day}</text>')
    parts.append(f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="{AXIS}"></line>')
    parts.append(f'<text x="{left - 4}" y="{top + 4}" text-anchor="end">{top_value:g}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 8}" text-anchor="middle">{text(axis, 40)}</text>')
    parts.append("</svg>")
    return "".join(parts)
