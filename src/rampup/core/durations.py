"""Durations as people write them in plans and queries: 500ms, 2s, 5m, 48h, 7d."""

import re
from datetime import timedelta

from rampup.errors import InvalidInput

__all__ = ["parse_duration", "format_duration"]

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")


def parse_duration(text: object, where: str) -> timedelta:
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise InvalidInput(
            f"{text!r} is not a duration; write a number and a unit: 500ms, 30s, 5m, 48h, 7d", where=where
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(span: timedelta) -> str:
    seconds = span.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit].total_seconds()
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"
