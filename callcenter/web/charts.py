"""Charts drawn on the server as SVG: bars with their 95 % intervals, and a time series.

No script and no chart library: the page embeds the SVG, the text is real text (the browser
shapes Arabic as in the rest of the page), and a right-to-left page gets a mirrored chart
(bars grow from the right, labels on the right), so Arabic reads in its own direction. No
``style`` attributes (the Content-Security-Policy forbids inline styles): colours come from
classes in app.css. Every chart has a title and a description for screen readers; the table
beside it carries the same figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    share: float | None  # None: hidden (suppressed) or no data
    low: float | None = None
    high: float | None = None
    text: str = ""  # the figure written beside the bar ("58.0 %")


def _f(value: float) -> str:
    return f"{value:.1f}"


def _line(css: str, x1: float, x2: float, y1: float, y2: float) -> str:
    return f'<line class="{css}" x1="{_f(x1)}" x2="{_f(x2)}" y1="{_f(y1)}" y2="{_f(y2)}"/>'


def bars(items: Sequence[Bar], *, title: str, rtl: bool, width: int = 640) -> Markup:
    """Horizontal bars, one per answer, 0-100 % with the interval as a whisker."""
    row, label_w, value_w = 30, 190, 70
    plot = width - label_w - value_w
    height = row * len(items) + 26
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-labelledby="{{id}}-t" direction="{"rtl" if rtl else "ltr"}">',
        Markup('<title id="{{id}}-t">{}</title>').format(title),
    ]

    def x(share: float) -> float:
        at = label_w + share * plot
        return width - at if rtl else at

    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line class="chart__grid" x1="{_f(x(tick))}" x2="{_f(x(tick))}" y1="0" y2="{height - 20}"/>'
            f'<text class="chart__tick" x="{_f(x(tick))}" y="{height - 6}" text-anchor="middle">'
            f"{int(tick * 100)}%</text>"
        )
    for index, item in enumerate(items):
        top = index * row + 4
        middle = top + row / 2 - 2
        # the label in its own column: on the right of a right-to-left chart (the text's start
        # is its right end there), on the left of a left-to-right one
        label_x = width - 6 if rtl else label_w - 6
        label = Markup(
            '<text class="chart__label" x="{}" y="{}" text-anchor="{}" dominant-baseline="middle">{}</text>'
        )
        parts.append(str(label.format(_f(label_x), _f(middle), "start" if rtl else "end", item.label[:40])))
        if item.share is None:
            parts.append(
                f'<text class="chart__hidden" x="{_f(x(0.01))}" y="{_f(middle)}" '
                f'text-anchor="start" dominant-baseline="middle">—</text>'
            )
            continue
        start, end = x(0.0), x(item.share)
        parts.append(
            f'<rect class="chart__bar" x="{_f(min(start, end))}" y="{_f(top + 4)}" '
            f'width="{_f(abs(end - start))}" height="{row - 12}"/>'
        )
        if item.low is not None and item.high is not None:
            a, b = x(item.low), x(item.high)
            parts.append(_line("chart__whisker", a, b, middle, middle))
            parts.append(_line("chart__whisker", a, a, middle - 6, middle + 6))
            parts.append(_line("chart__whisker", b, b, middle - 6, middle + 6))
        value_x = 4 if rtl else width - 4
        anchor = "start" if rtl else "end"
        parts.append(
            f'<text class="chart__value" x="{value_x}" y="{_f(middle)}" text-anchor="{anchor}" '
            f'dominant-baseline="middle" direction="ltr">{escape(item.text)}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(str(p) for p in parts))


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    css: str  # a class suffix: chart__line--sms
    points: Sequence[tuple[int, float]]  # (hour since launch, value)


def timeline(
    series: Sequence[Series], *, title: str, rtl: bool, y_max: float, width: int = 640, height: int = 220
) -> Markup:
    """Lines over the hours since launch; in a right-to-left page time runs from the right."""
    left, bottom, top = 48, 24, 10
    hours = max((p[0] for s in series for p in s.points), default=1) or 1
    plot_w, plot_h = width - left - 10, height - bottom - top
    scale = y_max or 1.0

    def x(hour: float) -> float:
        at = left + hour / hours * plot_w
        return width - at if rtl else at

    def y(value: float) -> float:
        return top + plot_h - value / scale * plot_h

    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-labelledby="{{id}}-t">',
        str(Markup('<title id="{{id}}-t">{}</title>').format(title)),
        f'<line class="chart__axis" x1="{_f(x(0))}" x2="{_f(x(hours))}" y1="{_f(y(0))}" y2="{_f(y(0))}"/>',
    ]
    for tick in range(0, hours + 1, max(1, hours // 6)):
        parts.append(
            f'<text class="chart__tick" x="{_f(x(tick))}" y="{height - 6}" text-anchor="middle">{tick}</text>'
        )
    for s in series:
        if not s.points:
            continue
        path = " ".join(f"{'M' if i == 0 else 'L'}{_f(x(h))},{_f(y(v))}" for i, (h, v) in enumerate(s.points))
        parts.append(f'<path class="chart__line chart__line--{escape(s.css)}" d="{path}"/>')
    parts.append("</svg>")
    return Markup("".join(parts))


def with_id(svg: Markup, chart_id: str) -> Markup:
    """The chart with its title's id made unique on the page."""
    return Markup(str(svg).replace("{id}", str(escape(chart_id))))
