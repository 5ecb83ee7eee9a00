"""Ratings on any declared scale become one score (1–5); comments are clipped and e-mail addresses masked."""

import pytest

from rampup.core.feedback import POSITIVE, clip, mask_emails, parse_scale, rating_of, score
from rampup.errors import InvalidInput


@pytest.mark.parametrize(
    ("scale", "rating", "expected"),
    [
        ("1-5", 1, 1.0),
        ("1-5", 5, 5.0),
        ("1-5", 3, 3.0),
        ("0-10", 10, 5.0),
        ("0-10", 5, 3.0),
        ("1-10", 1, 1.0),
        ("thumbs", "up", 5.0),
        ("thumbs", "down", 1.0),
        ("thumbs", True, 5.0),
        ("thumbs", 0, 1.0),
        (" 1 – 7 ", "7", 5.0),
    ],
)
def test_every_scale_becomes_one_to_five(scale: str, rating: object, expected: float) -> None:
    s = parse_scale(scale, "scale")
    assert score(rating_of(rating, s, "rating"), s, "rating") == pytest.approx(expected)
    assert s.rating(expected) == pytest.approx(rating_of(rating, s, "rating"))


def test_positive_is_four_stars_or_a_thumbs_up() -> None:
    five, thumbs = parse_scale("1-5", "s"), parse_scale("thumbs", "s")
    assert score(4, five, "r") >= POSITIVE > score(3, five, "r")
    assert score(1, thumbs, "r") >= POSITIVE > score(0, thumbs, "r")


@pytest.mark.parametrize(
    ("scale", "rating", "message"),
    [
        ("1-5", 6, "outside the scale 1-5"),
        ("1-5", 0, "outside the scale 1-5"),
        ("1-5", "great", "not a number"),
        ("thumbs", "sideways", "not a number"),
    ],
)
def test_a_rating_off_its_scale_is_refused_with_its_place(scale: str, rating: object, message: str) -> None:
    s = parse_scale(scale, "scale")
    with pytest.raises(InvalidInput, match=message) as caught:
        score(rating_of(rating, s, "rating"), s, "rating")
    assert caught.value.where == "rating"


@pytest.mark.parametrize("raw", ["5-1", "1-1", "stars", "", 5, None, "1-5-7"])
def test_a_scale_is_thumbs_or_a_rising_range(raw: object) -> None:
    with pytest.raises(InvalidInput, match="not a scale") as caught:
        parse_scale(raw, "events[0].scale")
    assert caught.value.where == "events[0].scale"


def test_emails_in_comments_are_masked_and_long_comments_clipped() -> None:
    text = "Write to ada.lovelace+rampup@example.co.uk or bob@ex-ample.org, not @handles"
    assert mask_emails(text) == "Write to a…@example.co.uk or b…@ex-ample.org, not @handles"
    assert clip("x" * 10, 10) == "x" * 10
    assert clip("x" * 11, 10) == "x" * 9 + "…"
