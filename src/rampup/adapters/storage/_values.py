"""Value conversions every storage module needs: aware timestamps back from SQLite, JSON-safe values in."""

import math
from datetime import UTC, datetime
from typing import Any, overload

__all__ = ["utc", "jsonable"]


@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: datetime | None) -> datetime | None: ...
def utc(value: datetime | None) -> datetime | None:
    # SQLite hands timestamps back naive; they were written as UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def jsonable(value: Any) -> Any:
    """Datetimes as ISO text, non-finite numbers as null (JSON has neither), containers walked."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
