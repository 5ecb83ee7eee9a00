"""User feedback: ratings on declared scales, brought to one score, and comments kept as plain text.

Every rating becomes a score from 1 to 5 (the scale's lowest to its highest, linearly; a thumbs-down is 1,
a thumbs-up 5), so ratings from a 1–5 form, a 0–10 survey and a thumbs widget average together, and a gate's
"< -0.3" means the same thing whatever scale the users answered on. A score of 4 or more is positive.
"""

import re
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rampup.errors import InvalidInput

__all__ = [
    "MAX_COMMENT",
    "SHOWN_COMMENT",
    "POSITIVE",
    "MIN_RATINGS",
    "Scale",
    "Entry",
    "EventRef",
    "parse_scale",
    "score",
    "rating_of",
    "clip",
    "mask_emails",
]

MAX_COMMENT = 5_000  # characters stored; the native API refuses longer, Sentry's widget is cut here
SHOWN_COMMENT = 280  # characters a report shows of one comment
POSITIVE = 4.0  # scores from here up count as positive: 4 and 5 stars, a thumbs-up, 7.75+ on 0–10
MIN_RATINGS = 30  # ratings per variant before a satisfaction gate may decide anything
THUMBS = "thumbs"
_RANGE = re.compile(r"^\s*(-?\d{1,6})\s*[-–]\s*(-?\d{1,6})\s*$")
_THUMBS_WORDS = {"up": 1.0, "down": 0.0, "true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0, "1": 1.0, "0": 0.0}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass(frozen=True, slots=True)
class Scale:
    low: float
    high: float
    text: str  # "1-5", "0-10", "thumbs"

    def rating(self, score: float) -> float:
        """The rating as the user gave it, back from its score."""
        return round(self.low + (score - 1) * (self.high - self.low) / 4, 2)


def parse_scale(raw: Any, where: str) -> Scale:
    """'1-5', '0-10', 'thumbs' (down 0, up 1)."""
    if raw == THUMBS:
        return Scale(0, 1, THUMBS)
    m = _RANGE.match(raw) if isinstance(raw, str) else None
    if m is None or int(m.group(1)) >= int(m.group(2)):
        raise InvalidInput(
            f"{raw!r} is not a scale; write 'thumbs' or a range like '1-5' or '0-10'", where=where
        )
    low, high = int(m.group(1)), int(m.group(2))
    return Scale(low, high, f"{low}-{high}")


def score(rating: float, scale: Scale, where: str) -> float:
    """A rating on its scale → a score from 1 to 5."""
    if not scale.low <= rating <= scale.high:
        raise InvalidInput(f"rating {rating:g} is outside the scale {scale.text}", where=where)
    return 1 + 4 * (rating - scale.low) / (scale.high - scale.low)


def rating_of(raw: Any, scale: Scale, where: str) -> float:
    """A rating as sent: a number, or for thumbs also up/down, true/false."""
    if scale.text == THUMBS and isinstance(raw, str | bool):
        word = str(raw).strip().lower()
        if word in _THUMBS_WORDS:
            return _THUMBS_WORDS[word]
    if isinstance(raw, str):
        with suppress(ValueError):  # not a number: refused below with the value as sent
            raw = float(raw.strip())
    if isinstance(raw, int | float) and not isinstance(raw, bool) and abs(raw) < 1e9:
        return float(raw)
    raise InvalidInput(f"rating {raw!r} is not a number on the scale {scale.text}", where=where)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mask_emails(text: str) -> str:
    """Addresses people typed into a comment, hidden when the comment is shown: ada@example.com → a…@example.com."""
    return _EMAIL.sub(lambda m: m.group(0)[0] + "…@" + m.group(0).rpartition("@")[2], text)


@dataclass(frozen=True, slots=True)
class EventRef:
    """Who an event was about and the flags it carried, kept by its id for feedback that names only the event."""

    event_id: str
    at_ms: int
    targeting_key: str | None
    flags: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class Entry:
    """One piece of feedback as stored: who, when, the score and comment, and the variants it belongs to."""

    at_ms: int
    targeting_key: str | None
    score: float | None
    scale: str | None
    comment: str | None
    tags: Mapping[str, str] | None
    variants: Mapping[str, str]  # flag → variant
    source: str  # native, sentry
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        scale = parse_scale(self.scale, "scale") if self.scale and self.score is not None else None
        return {
            "id": self.id,
            "at": datetime.fromtimestamp(self.at_ms / 1000, UTC),
            "targeting_key": self.targeting_key,
            "rating": scale.rating(self.score) if scale and self.score is not None else None,
            "scale": self.scale,
            "score": self.score,
            "positive": self.score >= POSITIVE if self.score is not None else None,
            "comment": self.comment,
            "tags": dict(self.tags or {}),
            "variants": dict(self.variants),
            "source": self.source,
        }
