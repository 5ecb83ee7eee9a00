"""Durations as people write them in plans and queries (500ms, 2s, 5m, 48h, 7d), and as they read them in
tables and sentences (20 s, 45 minutes, 3.5 days)."""

import re
from datetime import timedelta
from typing import Literal

from rampup.errors import InvalidInput

__all__ = ["DurationStyle", "parse_duration", "format_duration"]

DurationStyle = Literal["plan", "compact", "short", "long"]

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
# Rounded styles: the first unit whose limit the duration is under (so "80 s", then "85 min", then "60 h"),
# beyond the last one days with a decimal.
_ROUNDED = (
    (90.0, 1.0, "s", "second"),
    (90.0 * 60, 60.0, "min", "minute"),
    (72.0 * 3600, 3600.0, "h", "hour"),
)


def parse_duration(text: object, where: str) -> timedelta:
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(
            f"{text!r} is not a duration; write a number and a unit: 500ms, 30s, 5m, 48h, 7d", where=where
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(span: timedelta, style: DurationStyle = "plan") -> str:
    """`plan`: exact, as a plan writes it and `parse_duration` reads it back (90s, 48h, 500ms); `compact`: to
    three digits in a plan's units, for the reasons a decision records (48h, 1.5h, 10m, 45s); `short`: rounded,
    for tables (20 s, 45 min, 28 h, 3.5 days); `long`: rounded, for sentences (20 seconds, 1 hour)."""
    seconds = span.total_seconds()
    if style == "plan":
        return _exact(seconds)
    if style == "compact":
        return _compact(seconds)
    for limit, size, short, word in _ROUNDED:
        if seconds < limit:
            count = round(seconds / size)
            if style == "short":
                return f"{count} {short}"
            return f"{count} {word}" if count == 1 else f"{count} {word}s"
    return f"{seconds / 86400:.1f} days"


def _exact(seconds: float) -> str:
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit].total_seconds()
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"


def _compact(seconds: float) -> str:
    for unit in ("d", "h", "m"):
        size = _UNITS[unit].total_seconds()
        if seconds >= size:
            count = seconds / size
            return f"{count:.3g}{unit}" if count < 1000 else f"{count:.0f}{unit}"  # never 1.02e+03d
    return f"{seconds:.2g}s"
