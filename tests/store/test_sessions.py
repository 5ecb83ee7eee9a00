"""Dashboard sessions in the database, on SQLite and PostgreSQL: expiry slides while used and never passes the
maximum age; revoking the token or changing its secret ends the session; two containers (two instances) on one
database honour the same session."""

from datetime import UTC, datetime, timedelta

import pytest

from rampup.bootstrap import Container, build_container, prepare
from rampup.config import Settings
from rampup.core.tokens import Scope
from rampup.errors import Forbidden, Unauthorized


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


IDLE, MAX_AGE = timedelta(hours=1), timedelta(hours=3)


def make(database_url: str, clock: Clock, admin: str = "admin-secret") -> Container:
    settings = Settings(
        database_url=database_url,
        admin_token=admin,
        session_idle_s=IDLE.total_seconds(),
        session_max_s=MAX_AGE.total_seconds(),
    )
    c = build_container(settings, clock=clock)
    prepare(c)
    return c


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_session_slides_while_used_and_ends_at_its_maximum_age(database_url: str, clock: Clock) -> None:
    c = make(database_url, clock)
    secret, session = c.sessions.sign_in("admin-secret")
    assert session.token.scope is Scope.ADMIN and session.expires_at == clock.now + IDLE
    for _ in range(4):  # used every 40 minutes: the idle timeout never strikes...
        clock.now += timedelta(minutes=40)
        assert c.sessions.session(secret) is not None
    clock.now += timedelta(minutes=25)  # ...but 3 hours after sign-in it is over, however busy
    assert c.sessions.session(secret) is None


def test_an_unused_session_expires(database_url: str, clock: Clock) -> None:
    c = make(database_url, clock)
    secret, _ = c.sessions.sign_in("admin-secret")
    clock.now += IDLE - timedelta(seconds=1)
    assert c.sessions.session(secret) is not None
    clock.now += IDLE + timedelta(seconds=1)
    assert c.sessions.session(secret) is None


def test_another_instance_honours_the_session_and_its_sign_out(database_url: str, clock: Clock) -> None:
    first, second = make(database_url, clock), make(database_url, clock)
    secret, session = first.sessions.sign_in("admin-secret")
    seen = second.sessions.session(secret)
    assert seen is not None and seen.csrf == session.csrf and seen.token.name == "admin"
    second.sessions.sign_out(secret)
    assert first.sessions.session(secret) is None


def test_revoking_the_token_ends_its_sessions(database_url: str, clock: Clock) -> None:
    c = make(database_url, clock)
    token, token_secret = c.tokens.create("read", None, "viewer", "admin")
    secret, session = c.sessions.sign_in(token_secret)
    assert session.can(Scope.READ) and not session.can(Scope.WRITE)
    c.tokens.revoke(token.id, "admin")
    assert c.sessions.session(secret) is None


def test_a_new_admin_secret_ends_sessions_of_the_old_one(database_url: str, clock: Clock) -> None:
    c = make(database_url, clock)
    secret, _ = c.sessions.sign_in("admin-secret")
    restarted = make(database_url, clock, admin="another-secret")  # RAMPUP_ADMIN_TOKEN changed
    assert restarted.sessions.session(secret) is None


def test_only_tokens_that_read_everything_sign_in(database_url: str, clock: Clock) -> None:
    c = make(database_url, clock)
    _, sdk_secret = c.tokens.create("sdk", "production", "web", "admin")
    with pytest.raises(Forbidden, match="sdk token is for programs"):
        c.sessions.sign_in(sdk_secret)
    with pytest.raises(Unauthorized):
        c.sessions.sign_in("rp_not-a-token")
    _, read_secret = c.tokens.create("read", None, "viewer", "admin")
    c.tokens.revoke(next(t.id for t in c.tokens.tokens() if t.name == "viewer"), "admin")
    with pytest.raises(Unauthorized):
        c.sessions.sign_in(read_secret)


def test_the_cookie_secret_is_not_stored(database_url: str, clock: Clock) -> None:
    c = make(database_url, clock)
    secret, session = c.sessions.sign_in("admin-secret")
    assert session.id != secret and len(session.id) == 64
    assert c.sessions.session(session.id) is None  # the stored hash is no key
