"""Thresholds as plans and alert rules write them — '> 0.5%', '< 500ms', '> 5', '> +25%', '< -10%',
'> +0.3pp' — and the one table that turns their units into the metric's own (a fraction for rates, ms for
latencies)."""

import re
from dataclasses import dataclass
from typing import Any

from rampup.core.telemetry import Aggregation
from rampup.errors import InvalidInput

__all__ = ["UNITS", "Written", "check_duration", "check_own", "parse_threshold"]

_THRESHOLD = re.compile(r"^\s*([<>])\s*([+-])?\s*(\d+(?:\.\d+)?)\s*(pp|%|ms|s)?\s*$")
# A written unit → the factor to the metric's own unit. Percentage points and percentages are both
# hundredths: of a rate (a difference, '+0.3pp'), of a value (a change, '+25%') or a rate itself ('0.5%').
UNITS: dict[str | None, float] = {"%": 0.01, "pp": 0.01, "ms": 1.0, "s": 1000.0, None: 1.0}


@dataclass(frozen=True, slots=True)
class Written:
    """A threshold as written: which side, the number (signed when written with a sign) and its unit."""

    op: str  # "<" or ">"
    signed: bool  # written with + or -: a change or a difference against control, when compared
    number: float
    unit: str | None  # pp, %, ms, s, or None for a plain number
    text: str  # normalised: "> +0.3pp"

    @property
    def value(self) -> float:
        """In the metric's own unit."""
        return self.number * UNITS[self.unit]


def parse_threshold(raw: Any, where: str, examples: str) -> Written:
    """`examples` says what fits where the threshold is written, e.g. "'> 0.5%', '> 5' or '> 1000ms'"."""
    m = (
        _THRESHOLD.match(str(raw))
        if isinstance(raw, str | int | float) and not isinstance(raw, bool)
        else None
    )
    if m is None:
        raise InvalidInput(f"{raw!r} is not a threshold; write {examples}", where=where)
    op, sign, digits, unit = m.groups()
    number = float(digits) * (-1 if sign == "-" else 1)
    return Written(op, sign is not None, number, unit, f"{op} {sign or ''}{digits}{unit or ''}")


def check_own(written: Written, aggregation: Aggregation, raw: Any, where: str) -> None:
    """A threshold on the metric's own value: rates as percentages, durations for latencies only, no
    percentage points (they are differences against control)."""
    if written.unit == "pp":
        raise InvalidInput(
            f"{raw!r}: percentage points compare with control; add 'compare: control'", where=where
        )
    check_duration(written, aggregation, raw, where)
    if written.unit != "%" and aggregation is Aggregation.RATE:
        raise InvalidInput(f"write rates as percentages, e.g. '> 0.5%', not {raw!r}", where=where)


def check_duration(written: Written, aggregation: Aggregation, raw: Any, where: str) -> None:
    """'> 5s' on a count cannot mean anything; taking it as 5000 would hide a typo."""
    if written.unit in ("ms", "s") and aggregation is not Aggregation.PERCENTILE:
        raise InvalidInput(f"{raw!r} is a duration, but this metric is not a latency", where=where)
