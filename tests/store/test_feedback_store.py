"""Feedback in the store, on SQLite and PostgreSQL: kept as long as raw events, gone per user on request, and
Sentry feedback that names an earlier event attributed like it — through the services, with injected time."""

from datetime import UTC, datetime, timedelta

import pytest

from rampup.bootstrap import Container, build_container, prepare
from rampup.config import Settings
from rampup.core.telemetry import Kind, Observation
from rampup.errors import InvalidInput, NotFound
from rampup.services.feedback import FeedbackQuery


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def container(database_url: str, clock: Clock) -> Container:
    c = build_container(Settings(database_url=database_url, admin_token="t0ken"), clock=clock)
    prepare(c)
    return c


def said(c: Container, clock: Clock, user: str | None, comment: str, **fields: object) -> None:
    at = int(clock.now.timestamp() * 1000)
    o = Observation(Kind.FEEDBACK, at, user, value=3.0, name="1-5", message=comment)
    for name, value in fields.items():
        setattr(o, name, value)
    assert c.ingest.ingest("production", [o], "sentry" if "refers_to" in fields else "native") == 1


def comments(c: Container) -> list[tuple[str | None, str | None]]:
    return [(e.targeting_key, e.comment) for e in c.feedback.page(FeedbackQuery("production"))]


def test_feedback_goes_with_the_raw_events_retention(container: Container, clock: Clock) -> None:
    said(container, clock, "old", "said long ago")
    clock.now += timedelta(days=10)
    said(container, clock, "new", "said lately")
    clock.now += timedelta(days=5)
    container.ingest.purge(timedelta(days=14))
    assert comments(container) == [("new", "said lately")]
    clock.now += timedelta(days=10)
    container.ingest.purge(timedelta(days=14))
    assert comments(container) == []


def test_a_user_s_feedback_is_purged_everywhere_or_in_one_environment_and_audited(
    container: Container, clock: Clock
) -> None:
    for comment in ("one", "two"):
        said(container, clock, "ada", comment)
    said(container, clock, "bob", "three")
    assert container.feedback.purge("ada", "staging", "privacy-officer") == 0
    assert container.feedback.purge("ada", None, "privacy-officer") == 2
    assert comments(container) == [("bob", "three")]
    entries = container.flags.audit(action="feedback.purge")
    assert [(e.actor, e.target, e.environment, e.after) for e in entries] == [
        ("privacy-officer", "user:ada", None, {"deleted": 2}),
        ("privacy-officer", "user:ada", "staging", {"deleted": 0}),
    ]
    with pytest.raises(NotFound):
        container.feedback.purge("ada", "nowhere", "privacy-officer")
    with pytest.raises(InvalidInput):
        container.feedback.purge("", None, "privacy-officer")


def test_feedback_naming_an_earlier_event_takes_its_user_and_flags(
    container: Container, clock: Clock
) -> None:
    crash = Observation(Kind.ERROR, int(clock.now.timestamp() * 1000), "carol", {"workstation": True})
    crash.event_id = "a" * 32
    container.ingest.ingest("production", [crash], "sentry")
    clock.now += timedelta(hours=1)
    said(container, clock, None, "it crashed", refers_to="a" * 32)
    said(container, clock, None, "about something we never saw", refers_to="b" * 32)
    (unknown, named) = container.feedback.page(FeedbackQuery("production"))
    assert (named.targeting_key, named.variants, named.source) == ("carol", {"workstation": "on"}, "sentry")
    assert (unknown.targeting_key, unknown.variants) == (None, {})
