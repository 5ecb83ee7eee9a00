"""Feedback on the wire: Sentry's feedback event and user_report, Rampup's native event — what each becomes."""

import json
from typing import Any

import pytest

from rampup.adapters.codecs.native import decode_batch
from rampup.adapters.codecs.sentry import parse_envelope, parse_store
from rampup.core.feedback import MAX_COMMENT
from rampup.core.telemetry import Kind, Observation

NOW_MS = 1_790_000_000_000


def envelope(kind: str, payload: dict[str, Any]) -> bytes:
    return b"\n".join(json.dumps(x).encode() for x in ({}, {"type": kind}, payload)) + b"\n"


def feedback(tags: dict[str, str], message: str = "nice", **extra: Any) -> Observation:
    payload = {"type": "feedback", "tags": tags, "contexts": {"feedback": {"message": message, **extra}}}
    (o,) = parse_envelope(envelope("feedback", payload), NOW_MS)[1]
    return o


@pytest.mark.parametrize(
    ("tags", "score", "scale"),
    [
        ({"rating": "4"}, 4.0, "1-5"),
        ({"rating": "10", "rating_scale": "0-10"}, 5.0, "0-10"),
        ({"rating": "up", "rating_scale": "thumbs"}, 5.0, "thumbs"),
        ({"rating": "7"}, None, None),  # off the scale: unrated, the comment kept
        ({"rating": "great"}, None, None),
        ({"rating": "3", "rating_scale": "stars"}, None, None),
        ({}, None, None),
    ],
)
def test_sentry_feedback_takes_its_rating_from_a_tag(
    tags: dict[str, str], score: float | None, scale: str | None
) -> None:
    o = feedback(tags)
    assert (o.kind, o.value, o.name, o.message) == (Kind.FEEDBACK, score, scale, "nice")


def test_a_widget_s_long_comment_is_cut_and_the_reporter_s_address_is_not_kept() -> None:
    o = feedback({}, "x" * (MAX_COMMENT + 1000), contact_email="ada@example.com", name="Ada")
    assert o.message is not None and len(o.message) == MAX_COMMENT and o.message.endswith("…")
    assert "ada@example.com" not in repr(o) and "Ada" not in repr(o)


def test_feedback_names_the_event_it_is_about() -> None:
    assert feedback({}, associated_event_id="AB-CD").refers_to == "abcd"
    report = {"event_id": "ef01", "name": "Bob", "email": "bob@example.com", "comments": "crashed"}
    (o,) = parse_envelope(envelope("user_report", report), NOW_MS)[1]
    assert (o.kind, o.refers_to, o.message, o.value, o.targeting_key) == (
        Kind.FEEDBACK,
        "ef01",
        "crashed",
        None,
        None,
    )
    _, (stored,) = parse_store(
        json.dumps({"type": "feedback", "contexts": {"feedback": {"message": "hi"}}}).encode(), NOW_MS
    )
    assert (stored.kind, stored.message) == (Kind.FEEDBACK, "hi")


def test_an_error_keeps_its_event_id_for_feedback_to_name() -> None:
    payload = {"event_id": "0123abcd", "user": {"id": "u1"}, "message": "boom"}
    (o,) = parse_envelope(envelope("event", payload), NOW_MS)[1]
    assert (o.kind, o.event_id, o.targeting_key) == (Kind.ERROR, "0123abcd", "u1")


def test_native_feedback_becomes_a_score_and_a_comment() -> None:
    body = {
        "events": [
            {"type": "feedback", "targeting_key": "u1", "rating": "down", "scale": "thumbs", "comment": "no"}
        ]
    }
    (o,) = decode_batch(json.dumps(body).encode(), NOW_MS)
    assert (o.kind, o.value, o.name, o.message, o.at_ms) == (Kind.FEEDBACK, 1.0, "thumbs", "no", NOW_MS)
