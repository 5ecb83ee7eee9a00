"""Charts for reports: an inline SVG line chart (for HTML, e-mail included: no scripts, no external files) and a
Unicode sparkline (for Markdown and terminals)."""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from html import escape
from zoneinfo import ZoneInfo

from rampup.adapters.reports.labels import metric_label
from rampup.core.reports import Chart

__all__ = ["svg_chart", "sparkline", "marker_line", "VARIANT_NAMES", "COLORS"]

VARIANT_NAMES = {"on": "with the feature", "off": "without", "all": "all users"}
COLORS = {"on": "#e8590c", "off": "#1c7ed6", "all": "#495057"}
_PALETTE = ("#2f9e44", "#ae3ec9", "#f08c00", "#0c8599")
_BLOCKS = "▁▂▃▄▅▆▇█"
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 34, 30
PLOT_W, PLOT_H = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM


def _color(variant: str, index: int) -> str:
    return COLORS.get(variant) or _PALETTE[index % len(_PALETTE)]


def _nice_top(high: float) -> float:
    """The y axis's top: a round number at or above the highest value, in four even steps."""
    if high <= 0:
        return 1.0
    raw = high / 4
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return step * 4


def _ticks(start: datetime, end: datetime, zone: ZoneInfo) -> list[tuple[datetime, str]]:
    """Time labels: five even ones within two days; beyond, local midnights (at most about seven)."""
    span = end - start
    if span <= timedelta(days=2):
        fmt = "%H:%M:%S" if span <= timedelta(hours=1) else "%H:%M"
        return [(at, at.astimezone(zone).strftime(fmt)) for at in (start + span * i / 4 for i in range(5))]
    step = timedelta(days=max(1, math.ceil(span.days / 7)))
    day = start.astimezone(zone).date() + timedelta(days=1)
    ticks = []
    while (at := datetime.combine(day, time(0), zone)) <= end:
        ticks.append((at, at.strftime("%d %b")))
        day += step
    return ticks


def _scale_top(chart: Chart, values: list[float]) -> float:
    """The highest value the y axis shows: the data, its bounds while they stay near it, and the thresholds
    that are close enough to read beside the data (a far one would flatten every line)."""
    high = max(values, default=0.0)
    uppers = [u for band in chart.bands.values() for _, u in band if u is not None]
    high = max([high, *(u for u in uppers if u <= 2 * high)])
    near = [line.value for line in chart.lines if line.value <= max(4 * high, 0.0) or not values]
    return _nice_top(max([high, *near]) * 1.05 if near else high)


@dataclass(frozen=True, slots=True)
class _Frame:
    """Where the chart's times and values fall on the canvas."""

    start: datetime
    span_s: float
    top: float  # the y axis's highest value

    def x(self, at: datetime) -> float:
        return LEFT + min(max((at - self.start).total_seconds() / self.span_s, 0.0), 1.0) * PLOT_W

    def y(self, value: float) -> float:
        return TOP + PLOT_H - value / self.top * PLOT_H


def svg_chart(
    chart: Chart, zone: ZoneInfo, label: Callable[[float], str], *, inline_style: bool = True
) -> str:
    """One line per variant over the chart's window, y from 0, its 95% band shaded, thresholds as labelled
    horizontal lines and stage changes as labelled dashed ones. `label` writes a value on the y axis (e.g.
    0.005 → "0.5%"). Without `inline_style` the page's style sheet sets the font (for a strict CSP)."""
    start, end = chart.start, chart.end
    values = [v for series in chart.series.values() for v in series if v is not None]
    frame = _Frame(start, max((end - start).total_seconds(), 1.0), _scale_top(chart, values))
    title = f"{metric_label(chart.metric)} per variant, {start.astimezone(zone):%Y-%m-%d %H:%M} to {end.astimezone(zone):%Y-%m-%d %H:%M}"
    style = (
        ' style="font-family:Helvetica,Arial,sans-serif;font-size:11px;background:#fff"'
        if inline_style
        else ""
    )
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" role="img" aria-label="{escape(title)}"{style}>',
        f"<title>{escape(title)}</title>",
        *_axes(frame, label, _ticks(start, end, zone)),
        *_markers(frame, chart),
        *_bands(frame, chart),
        *_thresholds(frame, chart),
        *_series(frame, chart),
    ]
    if not values:
        out.append(
            f'<text x="{LEFT + PLOT_W / 2:.1f}" y="{TOP + PLOT_H / 2:.1f}" text-anchor="middle" '
            f'fill="#868e96">no data in this window</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _axes(frame: _Frame, label: Callable[[float], str], ticks: list[tuple[datetime, str]]) -> list[str]:
    """The horizontal grid with the y labels, the y axis, and the time ticks under the plot."""
    out = []
    for i in range(5):
        value = frame.top * i / 4
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{frame.y(value):.1f}" y2="{frame.y(value):.1f}" '
            f'stroke="{"#868e96" if i == 0 else "#e9ecef"}"/>'
        )
        out.append(
            f'<text x="{LEFT - 6}" y="{frame.y(value) + 4:.1f}" text-anchor="end" fill="#495057">'
            f"{escape(label(value))}</text>"
        )
    out.append(f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + PLOT_H}" stroke="#868e96"/>')
    for at, text in ticks:
        tx = frame.x(at)
        anchor = "start" if tx - LEFT < 20 else "end" if WIDTH - RIGHT - tx < 20 else "middle"
        out.append(
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{TOP + PLOT_H}" y2="{TOP + PLOT_H + 4}" stroke="#868e96"/>'
        )
        out.append(
            f'<text x="{tx:.1f}" y="{HEIGHT - 10}" text-anchor="{anchor}" fill="#495057">{text}</text>'
        )
    return out


def _markers(frame: _Frame, chart: Chart) -> list[str]:
    out = []
    for marker in chart.markers:
        mx = frame.x(marker.at)
        out.append(
            f'<line class="marker" x1="{mx:.1f}" x2="{mx:.1f}" y1="{TOP - 4}" y2="{TOP + PLOT_H}" '
            f'stroke="#495057" stroke-dasharray="4 3"/>'
        )
        out.append(
            f'<text class="marker-label" x="{mx + 3:.1f}" y="{TOP - 6}" fill="#212529">'
            f"{escape(marker.label)}</text>"
        )
    return out


def _bands(frame: _Frame, chart: Chart) -> list[str]:
    out = []
    for index, (variant, band) in enumerate(chart.bands.items()):
        known = [
            (frame.x(at), lo, hi)
            for at, (lo, hi) in zip(chart.times, band, strict=True)
            if lo is not None and hi is not None
        ]
        if len(known) > 1:
            upper = " ".join(f"{px:.1f},{frame.y(min(hi, frame.top)):.1f}" for px, _, hi in known)
            lower = " ".join(f"{px:.1f},{frame.y(min(lo, frame.top)):.1f}" for px, lo, _ in reversed(known))
            out.append(
                f'<polygon class="band" data-variant="{escape(variant)}" fill="{_color(variant, index)}" '
                f'fill-opacity="0.12" stroke="none" points="{upper} {lower}"/>'
            )
    return out


def _thresholds(frame: _Frame, chart: Chart) -> list[str]:
    out = []
    for line in chart.lines:
        if line.value > frame.top:
            continue
        ly = frame.y(line.value)
        out.append(
            f'<line class="threshold" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{ly:.1f}" y2="{ly:.1f}" '
            f'stroke="#c92a2a" stroke-dasharray="6 3" stroke-width="1"/>'
        )
        out.append(
            f'<text class="threshold-label" x="{WIDTH - RIGHT - 2}" y="{ly - 3:.1f}" text-anchor="end" '
            f'fill="#c92a2a">{escape(line.label)}</text>'
        )
    return out


def _series(frame: _Frame, chart: Chart) -> list[str]:
    """A line per variant, and its entry in the legend along the top."""
    out = []
    legend_x = LEFT
    for index, (variant, series) in enumerate(chart.series.items()):
        color = _color(variant, index)
        points = [
            (frame.x(at), frame.y(v)) for at, v in zip(chart.times, series, strict=True) if v is not None
        ]
        # Missing points (no traffic in that minute or hour) are skipped: the line joins its neighbours.
        coords = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        out.append(
            f'<polyline class="series" data-variant="{escape(variant)}" fill="none" stroke="{color}" '
            f'stroke-width="2" stroke-linejoin="round" points="{coords}"/>'
        )
        if len(points) == 1:  # a single point draws no line
            out.append(f'<circle cx="{points[0][0]:.1f}" cy="{points[0][1]:.1f}" r="3" fill="{color}"/>')
        name = f"{variant} ({VARIANT_NAMES[variant]})" if variant in VARIANT_NAMES else variant
        out.append(
            f'<line x1="{legend_x}" x2="{legend_x + 16}" y1="10" y2="10" stroke="{color}" stroke-width="3"/>'
        )
        out.append(f'<text x="{legend_x + 20}" y="14" fill="#212529">{escape(name)}</text>')
        legend_x += 30 + 7 * len(name)
    return out


def sparkline(values: Sequence[float | None], low: float, high: float, width: int = 48) -> str:
    """A one-line chart on a shared scale [low, high] (so variants compare); longer series are averaged down to
    `width` characters, and a gap is a space."""
    if len(values) > width:
        size = -(-len(values) // width)
        chunks = [[v for v in values[i : i + size] if v is not None] for i in range(0, len(values), size)]
        values = [sum(c) / len(c) if c else None for c in chunks]
    span = (high - low) or 1.0
    return "".join(
        " " if v is None else _BLOCKS[round((v - low) / span * (len(_BLOCKS) - 1))] for v in values
    )


def marker_line(chart: Chart, width: int) -> str:
    """Stage changes under a sparkline of `width` characters: ↑ and the percentage, at their place in time."""
    span_s = max((chart.end - chart.start).total_seconds(), 1.0)
    line = ""
    for marker in chart.markers:
        at = round((marker.at - chart.start).total_seconds() / span_s * (width - 1))
        text = f"↑{marker.label}"
        line += (
            " " * max(at - len(line), 1 if line else 0) + text
        )  # crowded markers shift right, never overlap
    return line
