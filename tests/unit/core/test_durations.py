"""Durations: read as plans write them, and written three ways (exactly for plans, rounded for tables and for
sentences)."""

from datetime import timedelta

import pytest

from rampup.core.durations import DurationStyle, format_duration, parse_duration
from rampup.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("500ms", timedelta(milliseconds=500)),
        ("30s", timedelta(seconds=30)),
        (" 1.5 m ", timedelta(seconds=90)),
        ("48h", timedelta(hours=48)),
        ("7d", timedelta(days=7)),
    ],
)
def test_plans_write_a_number_and_a_unit(text: str, span: timedelta) -> None:
    assert parse_duration(text, "for") == span


@pytest.mark.parametrize("text", ["", "5", "5 minutes", "-5m", "5w", 300, None])
def test_anything_else_is_refused_saying_where(text: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_duration(text, "gates[0].for")
    assert caught.value.where == "gates[0].for"
    assert "500ms, 30s, 5m, 48h, 7d" in caught.value.message


@pytest.mark.parametrize(
    ("span", "style", "text"),
    [
        # plan: exact, in the largest unit that divides it, and read back the same
        (timedelta(milliseconds=500), "plan", "500ms"),
        (timedelta(seconds=90), "plan", "90s"),
        (timedelta(minutes=5), "plan", "5m"),
        (timedelta(hours=48), "plan", "2d"),
        (timedelta(hours=36), "plan", "36h"),
        (timedelta(seconds=1.5), "plan", "1500ms"),
        # compact: three digits in a plan's units, for the reasons a decision records
        (timedelta(hours=48, seconds=3), "compact", "2d"),
        (timedelta(minutes=90), "compact", "1.5h"),
        (timedelta(minutes=10), "compact", "10m"),
        (timedelta(seconds=45), "compact", "45s"),
        (timedelta(days=1020.4), "compact", "1020d"),  # not 1.02e+03d
        # short: rounded, for tables
        (timedelta(seconds=20), "short", "20 s"),
        (timedelta(seconds=89), "short", "89 s"),
        (timedelta(seconds=90), "short", "2 min"),
        (timedelta(minutes=45), "short", "45 min"),
        (timedelta(minutes=89), "short", "89 min"),
        (timedelta(minutes=90), "short", "2 h"),
        (timedelta(hours=28), "short", "28 h"),
        (timedelta(hours=71), "short", "71 h"),
        (timedelta(hours=72), "short", "3.0 days"),
        (timedelta(hours=84), "short", "3.5 days"),
        # long: rounded, for sentences
        (timedelta(seconds=1), "long", "1 second"),
        (timedelta(seconds=20), "long", "20 seconds"),
        (timedelta(seconds=60), "long", "60 seconds"),
        (timedelta(minutes=2), "long", "2 minutes"),
        (timedelta(minutes=65), "long", "65 minutes"),
        (timedelta(minutes=90), "long", "2 hours"),
        (timedelta(hours=24), "long", "24 hours"),
        (timedelta(days=7), "long", "7.0 days"),
    ],
)
def test_durations_are_written_for_plans_tables_and_sentences(
    span: timedelta, style: DurationStyle, text: str
) -> None:
    assert format_duration(span, style) == text


@pytest.mark.parametrize("text", ["500ms", "90s", "5m", "36h", "7d"])
def test_the_plan_style_reads_back_as_the_same_duration(text: str) -> None:
    span = parse_duration(text, "for")
    assert parse_duration(format_duration(span), "for") == span
