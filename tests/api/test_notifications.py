"""Notifications end to end, against real receivers on loopback.

A real `rampup serve` (fast tick and outbox poll) delivers to:
- an HTTP receiver that checks `X-Rampup-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`
  (and refuses a stale timestamp), and that can refuse the first N deliveries or everything for a while;
- an aiosmtpd SMTP server that keeps every e-mail;
- the same HTTP receiver standing in for Slack and the PagerDuty Events API v2.

Delivery is at least once: a receiver drops duplicates by the notification `id`, which is the same on every
retry. So the checks are: after dropping duplicates by id, every transition (or alert) is there exactly once,
nothing else is, and the retries of a refused delivery carried the id of the notification they retried.
"""

import json
import shutil
import ssl
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.cli import rampup_at
from tests.support.receivers import MAX_SKEW_S, Mailbox, Receiver, sign, smtp_server
from tests.support.rollouts import command, drive, rollout, summary
from tests.support.servers import FAST, Server
from tests.support.traffic import Traffic
from tests.support.waiting import PATIENCE_S, wait_until

ENV = "production"
SECRET = "whsec-loopback-test-secret-0123"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(SECRET) as r:
        yield r


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as (mailbox, port):
        yield mailbox, port


def start(server_factory: Callable[..., Server], database_url: str) -> Server:
    """A server on a manual clock: soak times, alert windows and retry backoff pass when the test says."""
    return server_factory(database_url, extra_env=FAST, manual_clock=True)


@pytest.fixture
def manual_server(module_manual_servers: Callable[[str], Server]) -> Server:
    """The module's manual-clock server, for tests that keep out of each other's way: channels (and their
    receivers' paths) named for the test, alert rules in an environment of the test's own, and checks of the
    outbox limited to the test's channels. Its clock moves on to a whole second first, as a fresh one starts."""
    server = module_manual_servers("sqlite")
    server.advance_to(server.now().replace(microsecond=0) + timedelta(seconds=1))
    return server


# ---------------------------------------------------------------- helpers


def create_channel(c: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    r = c.post("/api/v1/channels", json=body)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def webhook_channel(c: httpx.Client, name: str, url: str, **extra: Any) -> None:
    create_channel(c, {"name": name, "type": "webhook", "url": url, "secret": SECRET, **extra})


def email_channel(c: httpx.Client, name: str, port: int) -> None:
    create_channel(
        c,
        {
            "name": name,
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "from": "rampup@example.com",
            "to": ["oncall@example.com", "support@example.com"],
            "starttls": False,
        },
    )


def create_flag(c: httpx.Client, key: str) -> None:
    r = c.post("/api/v1/flags", json={"key": key, "description": f"notifications {key}", "type": "boolean"})
    assert r.status_code == 201, r.text


def create_rollout(c: httpx.Client, plan: dict[str, Any]) -> dict[str, Any]:
    r = c.post("/api/v1/rollouts", json={"plan": plan})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def notified_plan(
    flag: str, stages: list[dict[str, Any]], gates: list[dict[str, Any]], *channels: str
) -> dict[str, Any]:
    """A plan of `flag` in production that tells `channels` of every transition."""
    return {
        "name": f"{flag}-plan",
        "flag": flag,
        "environment": ENV,
        "stages": stages,
        "gates": gates,
        "notify": list(channels),
    }


def deliveries(c: httpx.Client, channel: str | None = None) -> list[dict[str, Any]]:
    r = c.get("/api/v1/notifications", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return [d for d in r.json() if channel is None or d["channel"] == channel]


def settled(c: httpx.Client, *channels: str) -> bool:
    """Every notification queued so far to these channels has been delivered: nothing more is on its way."""
    return all(d["status"] == "delivered" for d in deliveries(c) if d["channel"] in channels)


def new_environment(c: httpx.Client, key: str) -> str:
    """An environment of the test's own: its alert rules see only the test's events."""
    r = c.post("/api/v1/environments", json={"key": key})
    assert r.status_code == 201, r.text
    return key


def keep_time_moving_until(server: Server, condition: Callable[[], bool], what: str, c: httpx.Client) -> None:
    """A second of the manual clock per look, so that retries of refused deliveries come due."""
    wait_until(
        lambda: bool(server.advance("1s")) and condition(),
        what,
        detail=lambda: json.dumps(deliveries(c), indent=1, default=str),
    )


def send_requests(
    c: httpx.Client,
    n: int,
    fail_every: int | None = None,
    tags: dict[str, str] | None = None,
    prefix: str = "u",
    environment: str = ENV,
) -> None:
    """`n` environment-wide request events (no flag), every `fail_every`-th failing."""
    events = [
        {
            "type": "request",
            "targeting_key": f"{prefix}-{i}",
            "duration_ms": 50.0,
            "ok": not (fail_every and i % fail_every == 0),
            **({"tags": tags} if tags else {}),
        }
        for i in range(n)
    ]
    r = c.post("/api/v1/events", params={"environment": environment}, json={"events": events})
    assert r.status_code == 202, r.text


def alerts_in(c: httpx.Client, environment: str, state: str | None = None) -> list[dict[str, Any]]:
    """GET /api/v1/alerts, the alerts of one environment's rules."""
    r = c.get("/api/v1/alerts", params={"state": state} if state else {})
    assert r.status_code == 200, r.text
    return [a for a in r.json() if a["rule"]["environment"] == environment]


def transition_key(t: dict[str, Any]) -> tuple[str, str, int, int]:
    return t["from"], t["to"], t["from_stage"], t["to_stage"]


def parts(message: EmailMessage) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in message.walk():
        if part.get_content_maintype() == "text":
            assert isinstance(part, EmailMessage)
            found.setdefault(part.get_content_type(), str(part.get_content()))
    return found


# ---------------------------------------------------------------- the receiver's own check


def test_the_receiver_refuses_a_wrong_or_stale_signature(receiver: Receiver) -> None:
    """The signature check the tests rely on is real: a wrong key or a replayed (old) timestamp is a 401."""
    body = json.dumps({"id": "x", "type": "test", "at": "2026-01-01T00:00:00+00:00"}).encode()
    now = int(time.time())
    cases = [
        (sign(SECRET, now, body), 200),
        (sign("another-secret-entirely", now, body), 401),
        (sign(SECRET, now - MAX_SKEW_S - 60, body), 401),
        (sign(SECRET, now + MAX_SKEW_S + 60, body), 401),
        (sign(SECRET, now, body + b" "), 401),
        ("v1=abc", 401),
    ]
    for header, expected in cases:
        r = httpx.post(
            receiver.url("/check"), content=body, headers={"X-Rampup-Signature": header}, timeout=PATIENCE_S
        )
        assert r.status_code == expected, header
    r = httpx.post(receiver.url("/check"), content=body, timeout=PATIENCE_S)
    assert r.status_code == 401


# ---------------------------------------------------------------- (a) a plan's transitions, signed, once


def test_every_transition_of_a_plan_reaches_a_refusing_webhook_and_smtp_once_signed(
    receiver: Receiver, smtp: tuple[Mailbox, int], manual_server: Server
) -> None:
    mailbox, smtp_port = smtp
    receiver.refuse_first = 3  # 503, 503, 503, then it recovers: retried after 1 s, 2 s, 4 s (of the clock)
    flag = "notify-climb"
    with manual_server.client() as c:
        webhook_channel(c, "ops-hook", receiver.url("/hook"))
        email_channel(c, "ops-mail", smtp_port)
        create_flag(c, flag)
        traffic = Traffic(c, flag)
        plan = notified_plan(
            flag,
            [
                {
                    "name": "Early Access",
                    "percentage": 10,
                    "min_duration": "1s",
                    "prerequisites": ["Support team briefed"],
                },
                {"name": "General", "percentage": 50, "min_duration": "1s"},
                {"name": "Full Rollout", "percentage": 100, "min_duration": "1s", "approval": "required"},
            ],
            [
                {"metric": "error_rate", "rollback": "> 5%", "disable": "> 20%"},
                {"metric": "data_loss", "rollback_to": 0},
            ],
            "ops-hook",
            "ops-mail",
        )
        created = create_rollout(c, plan)
        rid = created["id"]
        assert created["state"] == "awaiting_approval"
        command(c, rid, "signoff", by="dana", prerequisite="Support team briefed")
        drive(
            manual_server,
            c,
            rid,
            lambda s: s["state"] == "awaiting_approval" and s["stage"]["number"] == 2,
            traffic=traffic,
            what="the approval wait at stage 2",
        )
        command(c, rid, "approve", "team ready for full launch", by="lee")
        status = drive(
            manual_server, c, rid, lambda s: s["state"] == "completed", traffic=traffic, what="completion"
        )
        timeline = status["timeline"]
        moves = [transition_key(t) for t in timeline]
        assert moves[0] == ("pending", "awaiting_approval", 0, 0), moves
        assert moves[-1] == ("running", "completed", 3, 3), moves

        # Every transition reaches both channels (the webhook only after its receiver recovers).
        def arrived() -> bool:
            return len({b["id"] for b in receiver.bodies("/hook")}) >= len(timeline) and len(
                mailbox.snapshot()
            ) >= len(timeline)

        keep_time_moving_until(manual_server, arrived, "every transition on both channels", c)
        wait_until(
            lambda: settled(c, "ops-hook", "ops-mail"),
            "nothing more on its way",
            detail=lambda: deliveries(c),
        )
        outbox = deliveries(c)

    # ---- the webhook: every POST signed; the refused ones were retries of the same notification
    posts = receiver.snapshot("/hook")
    assert [p.problem for p in posts if p.problem] == [], "every delivery must carry a valid signature"
    refused = [p for p in posts if p.status == 503]
    assert len(refused) == 3
    assert len({p.body["id"] for p in refused}) == 1, "a retry carries the id of the notification it retries"
    assert all(p.body == refused[0].body for p in refused), "a retry sends the same notification"
    accepted = [p.body for p in posts if p.status == 200]
    ids = [b["id"] for b in accepted]
    assert refused[0].body["id"] == ids[0], (
        "the refused notification went out first once the receiver recovered"
    )
    assert len(ids) == len(set(ids)), f"a delivery answered 200 was sent again: {Counter(ids)}"
    assert len(accepted) == len(timeline), [b["type"] for b in accepted]
    for p in posts:
        assert p.headers.get("content-type", "").startswith("application/json")
        assert p.headers.get("x-rampup-delivery") in (None, p.body["id"])

    # In the order the decisions were made: one notification per transition, with its evidence.
    for body, t in zip(accepted, timeline, strict=True):
        assert set(body) >= {"id", "type", "at", "title", "text", "details"}, body
        assert isinstance(body["id"], str) and body["id"]
        assert datetime.fromisoformat(body["at"]).tzinfo is not None
        details = body["details"]
        assert details["rollout_id"] == rid and details["flag"] == flag and details["environment"] == ENV
        assert transition_key(details) == transition_key(t), (body, t)
        assert details["reason"] == t["reason"] and body["text"] == t["reason"]
        assert details["actor"] == t["actor"]
        assert details.get("evidence", []) == t["evidence"]
    types = [b["type"] for b in accepted]
    by_move = {transition_key(b["details"]): b["type"] for b in accepted}
    assert by_move[("pending", "awaiting_approval", 0, 0)] in ("rollout.started", "rollout.awaiting_approval")
    assert by_move[("awaiting_approval", "awaiting_approval", 0, 0)] == "rollout.signed_off"
    assert by_move[("awaiting_approval", "running", 0, 1)] == "rollout.advanced"
    assert by_move[("running", "running", 1, 2)] == "rollout.advanced"
    assert by_move[("running", "awaiting_approval", 2, 2)] == "rollout.awaiting_approval"
    assert by_move[("awaiting_approval", "running", 2, 3)] == "rollout.advanced"
    assert by_move[("running", "completed", 3, 3)] == "rollout.completed"
    assert types.count("rollout.advanced") == 3, types
    # The controller's advance carries the gate evidence it decided on.
    controller_advance = next(
        b for b in accepted if transition_key(b["details"]) == ("running", "running", 1, 2)
    )
    assert any(
        e.get("metric") == "error_rate" and e.get("verdict") == "pass"
        for e in controller_advance["details"]["evidence"]
    ), controller_advance
    assert any(f[0] == "error_rate" and "pass" in f[1] for f in controller_advance["fields"]), (
        controller_advance
    )
    approval = next(
        b for b in accepted if b["details"]["on_behalf_of"] == "lee" and b["details"]["to_stage"] == 3
    )
    assert "team ready for full launch" in json.dumps(accepted) and approval["type"] == "rollout.advanced"

    # ---- the e-mails: the same notifications (same ids), plain text and HTML, to every recipient
    mails = mailbox.snapshot()
    assert len(mails) == len(timeline), [str(m["Subject"]) for _, m in mails]
    by_id = {b["id"]: b for b in accepted}
    mail_ids = [str(m["X-Rampup-Notification"]) for _, m in mails]
    assert mail_ids == ids, "the e-mail channel gets the same notifications, in the same order"
    for rcpt, message in mails:
        body = by_id[str(message["X-Rampup-Notification"])]
        assert sorted(rcpt) == ["oncall@example.com", "support@example.com"]
        assert "oncall@example.com" in str(message["To"]) and "support@example.com" in str(message["To"])
        assert str(message["From"]) == "rampup@example.com"
        assert str(message["Subject"]) == body["title"] and flag in body["title"]
        assert body["id"] in str(message["Message-ID"])
        found = parts(message)
        assert "text/plain" in found and "text/html" in found, list(found)
        assert body["text"] in found["text/plain"]
        assert (
            found["text/html"].lstrip().startswith("<") and f"{rid} notify-climb-plan" in found["text/html"]
        )
    assert sum("completed" in str(m["Subject"]) for _, m in mails) == 1

    # ---- the outbox: all delivered; the webhook's first item took four tries
    mine = [d for d in outbox if d["channel"] in ("ops-hook", "ops-mail")]
    assert len(mine) == 2 * len(timeline)
    assert all(d["status"] == "delivered" and d["delivered_at"] for d in mine), mine
    first = next(d for d in mine if d["channel"] == "ops-hook" and d["notification_id"] == ids[0])
    assert first["attempts"] == 4 and first["last_error"] is None
    assert {d["notification_id"] for d in mine if d["channel"] == "ops-mail"} == set(ids)


# ---------------------------------------------------------------- e-mail with STARTTLS and login


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (the host the channel names), made with the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate for the STARTTLS test")
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


class Credentials:
    """aiosmtpd authenticator: one user, one password; remembers who tried."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password
        self.tries: list[tuple[str, bool]] = []

    def __call__(self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = data.login.decode() == self.user and data.password.decode() == self.password
        self.tries.append((data.login.decode(), ok))
        return AuthResult(success=ok)


class TlsMailbox(Mailbox):
    """Also remembers, per message, whether the session was encrypted and authenticated."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions: list[tuple[bool, bool]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.sessions.append((session.ssl is not None, bool(session.authenticated)))
        return await super().handle_DATA(server, session, envelope)


def test_email_over_starttls_with_login(
    tmp_path: Path, make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    credentials = Credentials("rampup", "smtp-pass-9981")
    with smtp_server(
        TlsMailbox(),
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=credentials,
    ) as (mailbox, port):
        assert isinstance(mailbox, TlsMailbox)
        # The server trusts the test certificate the way an operator would: SSL_CERT_FILE.
        server = server_factory(make_database_url("sqlite"), extra_env={**FAST, "SSL_CERT_FILE": str(cert)})
        base = {
            "type": "email",
            "host": "127.0.0.1",
            "port": port,
            "from": "rampup@example.com",
            "to": ["oncall@example.com"],
            "starttls": True,
            "username": "rampup",
        }
        with server.client() as c:
            create_channel(c, {"name": "tls-mail", **base, "password": "smtp-pass-9981"})
            sent = c.post("/api/v1/channels/tls-mail/test")
            assert sent.status_code == 202, sent.text
            # The receiver has the e-mail a moment before the server records the delivery: wait for both.
            wait_until(
                lambda: len(mailbox.snapshot()) >= 1 and settled(c, "tls-mail"),
                "the e-mail over STARTTLS, recorded as delivered",
                detail=lambda: json.dumps(deliveries(c), default=str),
            )
            rows = {d["notification_id"]: d for d in deliveries(c)}
        assert mailbox.sessions == [(True, True)], "encrypted, then logged in, then sent"
        assert credentials.tries == [("rampup", True)]
        rcpt, message = mailbox.snapshot()[0]
        assert rcpt == ["oncall@example.com"]
        assert str(message["X-Rampup-Notification"]) == sent.json()["notification_id"]
        assert set(parts(message)) >= {"text/plain", "text/html"}
        assert rows[sent.json()["notification_id"]]["status"] == "delivered"


# ---------------------------------------------------------------- (b) nothing lost across a SIGKILL


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_queued_notifications_survive_a_killed_server(
    backend: str,
    receiver: Receiver,
    make_database_url: Callable[[str], str],
    server_factory: Callable[..., Server],
) -> None:
    receiver.refusing = True
    database_url = make_database_url(backend)
    server = start(server_factory, database_url)
    flag = f"notify-restart-{backend}"
    with server.client() as c:
        webhook_channel(c, "hook", receiver.url("/hook"))
        create_flag(c, flag)
        plan = notified_plan(
            flag,
            [
                {"name": "Early Access", "percentage": 10, "min_duration": "0.3s"},
                {"name": "General", "percentage": 50, "min_duration": "0.3s"},
                {"name": "Full Rollout", "percentage": 100, "min_duration": "0.3s"},
            ],
            [{"metric": "data_loss", "rollback_to": 0}],
            "hook",
        )
        rid = create_rollout(c, plan)["id"]
        status = drive(server, c, rid, lambda s: s["state"] == "completed", what="completion")
        keep_time_moving_until(
            server, lambda: len(receiver.refused("/hook")) >= 2, "two refused deliveries", c
        )
        queued = [d for d in deliveries(c, "hook")]
        assert len(queued) == len(status["timeline"]) == 4, queued
        assert all(d["status"] in ("pending", "failing") for d in queued), queued
        failing = [d for d in queued if d["status"] == "failing"]
        assert failing and all("503" in (d["last_error"] or "") for d in failing), failing
    stopped_at = server.now()
    server.stop(kill=True)  # SIGKILL: nothing flushed, nothing handed over
    assert server.process.returncode == -9

    receiver.refusing = False
    server = server_factory(database_url, extra_env=FAST, manual_clock=stopped_at)
    with server.client() as c:
        expected = sorted(d["notification_id"] for d in queued)  # ids are time-ordered: the queue order

        def all_arrived() -> bool:
            return {b["id"] for b in receiver.bodies("/hook")} >= set(expected)

        # Moving time also lets the dead process's lease run out, so that this one delivers.
        keep_time_moving_until(server, all_arrived, "the queued notifications after the restart", c)
        wait_until(lambda: settled(c, "hook"), "nothing more on its way", detail=lambda: deliveries(c))
        after = deliveries(c, "hook")

    posts = receiver.snapshot("/hook")
    assert [p.problem for p in posts if p.problem] == []
    assert {p.body["id"] for p in receiver.refused("/hook")} <= set(expected)
    ids = [b["id"] for b in receiver.bodies("/hook")]
    assert ids == expected, "each queued notification once, in the order it was queued"
    types = [b["type"] for b in receiver.bodies("/hook")]
    assert types[-1] == "rollout.completed" and types.count("rollout.advanced") >= 2, types
    assert all(d["status"] == "delivered" for d in after), after
    assert len(after) == len(status["timeline"]), "the restart made up no notification"


# ---------------------------------------------------------------- (c) Slack blocks, PagerDuty trigger/resolve


def test_an_alert_fires_and_resolves_on_pagerduty_slack_and_a_webhook(
    receiver: Receiver, manual_server: Server
) -> None:
    with Receiver() as plain:  # Slack and PagerDuty sign nothing
        routing_key = "R0UTINGKEY0123456789abcdefabcdef"
        with manual_server.client() as c:
            env = new_environment(c, "paged")
            create_channel(c, {"name": "team-slack", "type": "slack", "url": plain.url("/slack")})
            create_channel(
                c, {"name": "pager", "type": "pagerduty", "routing_key": routing_key, "url": plain.url("/pd")}
            )
            webhook_channel(c, "alert-hook", receiver.url("/hook"))
            r = c.post(
                "/api/v1/alert-rules",
                json={
                    "name": "Production errors",
                    "environment": env,
                    "metric": "error_rate",
                    "condition": "> 0.5%",
                    "window": "2s",
                    "severity": "critical",
                    "channels": ["pager", "team-slack", "alert-hook"],
                    "renotify": "never",
                },
            )
            assert r.status_code == 201, r.text
            rule = r.json()
            assert (
                rule["id"]
                and rule["window"] == "2s"
                and rule["channels"] == ["pager", "team-slack", "alert-hook"]
            )

            # 10% of the environment's requests fail: above 0.5%, so it fires (no `for`: on the first tick).
            send_requests(c, 200, fail_every=10, environment=env)
            manual_server.advance("0s")
            wait_until(
                lambda: any(p.body["event_action"] == "trigger" for p in plain.accepted("/pd")),
                "the PagerDuty trigger",
                detail=lambda: f"{deliveries(c)}\n{manual_server.output()[-2000:]}",
            )
            rules = c.get("/api/v1/alert-rules").json()
            assert [x["firing"] for x in rules if x["id"] == rule["id"]] == [True]
            assert [a["rule_id"] for a in alerts_in(c, env, "firing")] == [rule["id"]]

            # Healthy traffic only: once the 2 s window has passed the failures, it resolves.
            manual_server.advance("3s")
            send_requests(c, 200, environment=env)
            manual_server.advance("0s")
            wait_until(
                lambda: any(p.body["event_action"] == "resolve" for p in plain.accepted("/pd")),
                "the PagerDuty resolve",
                detail=lambda: f"{deliveries(c)}\n{manual_server.output()[-2000:]}",
            )
            wait_until(
                lambda: len(receiver.accepted("/hook")) >= 2 and len(plain.accepted("/slack")) >= 2,
                "the resolved notification on the webhook and Slack",
                detail=lambda: deliveries(c),
            )
            wait_until(
                lambda: settled(c, "pager", "team-slack", "alert-hook"),
                "nothing more on its way",
                detail=lambda: deliveries(c),
            )
            alerts = alerts_in(c, env)
            assert [(a["rule_id"], a["state"]) for a in alerts] == [(rule["id"], "resolved")]
            assert alerts[0]["resolved_at"] and alerts[0]["started_at"]
            assert alerts_in(c, env, "firing") == []

        # PagerDuty Events API v2: trigger then resolve, one dedup key.
        events = [p.body for p in plain.accepted("/pd")]
        assert [e["event_action"] for e in events] == ["trigger", "resolve"], events
        trigger, resolve = events
        for e in events:
            assert e["routing_key"] == routing_key
            assert isinstance(e["dedup_key"], str) and e["dedup_key"]
            assert set(e["payload"]) >= {"summary", "source", "severity"}
            assert e["payload"]["severity"] in ("critical", "error", "warning", "info")
            assert e["payload"]["summary"] and len(e["payload"]["summary"]) <= 1024
        assert resolve["dedup_key"] == trigger["dedup_key"]
        assert trigger["payload"]["severity"] == "critical"
        assert "Production errors" in trigger["payload"]["summary"]
        for p in plain.accepted("/pd"):
            assert p.headers.get("content-type", "").startswith("application/json")

        # Slack: Block Kit with a header and a section, and a fallback text.
        slack = [p.body for p in plain.accepted("/slack")]
        assert len(slack) == 2, slack
        for message, word in zip(slack, ("FIRING", "RESOLVED"), strict=True):
            assert isinstance(message["text"], str) and message["text"]
            kinds = [b["type"] for b in message["blocks"]]
            assert kinds[0] == "header" and "section" in kinds, kinds
            header = message["blocks"][0]["text"]
            assert header["type"] == "plain_text" and word in header["text"] and len(header["text"]) <= 150
            section = next(b for b in message["blocks"] if b["type"] == "section")
            assert section.get("text", {}).get("type") == "mrkdwn" and "error_rate" in section["text"]["text"]

        # The webhook: alert.firing then alert.resolved, signed, sharing the dedup key.
        hook = receiver.bodies("/hook")
        assert [b["type"] for b in hook] == ["alert.firing", "alert.resolved"], hook
        assert [p.problem for p in receiver.snapshot("/hook") if p.problem] == []
        assert hook[0]["dedup_key"] == hook[1]["dedup_key"] == trigger["dedup_key"]
        assert hook[0]["details"]["rule_id"] == hook[1]["details"]["rule_id"] == rule["id"]
        assert hook[0]["details"]["value"] > 0.005 and hook[1]["resolved"] is True
        assert hook[0]["severity"] == "critical"
        assert len({b["id"] for b in hook}) == 2


# ---------------------------------------------------------------- (d) min_severity


def test_a_channels_min_severity_keeps_info_notifications_out(
    receiver: Receiver, manual_server: Server
) -> None:
    flag = "notify-quiet"
    with manual_server.client() as c:
        webhook_channel(c, "everything", receiver.url("/all"))
        webhook_channel(c, "quiet", receiver.url("/quiet"), min_severity="warning")
        assert c.get("/api/v1/channels/quiet").json()["min_severity"] == "warning"
        create_flag(c, flag)
        plan = notified_plan(
            flag,
            [
                {"name": "Early Access", "percentage": 10, "min_duration": "10m"},
                {"name": "Full Rollout", "percentage": 100, "min_duration": "10m"},
            ],
            [{"metric": "data_loss", "rollback_to": 0}],
            "everything",
            "quiet",
        )
        rid = create_rollout(c, plan)["id"]
        command(c, rid, "pause", "waiting for the release notes", by="sam")  # warning
        command(c, rid, "resume", "notes are out", by="sam")  # info
        command(c, rid, "disable", "turn it off", by="sam")  # critical
        timeline = rollout(c, rid)["timeline"]
        assert len(timeline) == 4
        wait_until(
            lambda: len(receiver.accepted("/all")) >= 4 and settled(c, "everything", "quiet"),
            "every delivery",
            detail=lambda: deliveries(c),
        )
        everything = [(b["type"], b["severity"]) for b in receiver.bodies("/all")]
        quiet = [(b["type"], b["severity"]) for b in receiver.bodies("/quiet")]
        outbox = deliveries(c, "everything") + deliveries(c, "quiet")

    assert len(everything) == 4 and [s for _, s in everything] == ["info", "warning", "info", "critical"], (
        everything
    )
    assert quiet == [everything[1], everything[3]], quiet
    assert ("rollout.paused", "warning") in quiet and ("rollout.disabled", "critical") in quiet
    # What a channel does not want is settled, not retried forever.
    assert all(d["status"] == "delivered" for d in outbox), outbox


def test_a_start_straight_into_the_first_stage_is_notified_as_started(
    receiver: Receiver, manual_server: Server
) -> None:
    """The transitions people hear of begin with `started`. A plan whose first stage waits for nothing goes
    from pending to stage 1 in one transition; receivers still need to hear that the rollout started."""
    flag = "notify-start"
    with manual_server.client() as c:
        webhook_channel(c, "start-hook", receiver.url("/start"))
        create_flag(c, flag)
        plan = notified_plan(
            flag,
            [{"name": "Early Access", "percentage": 10, "min_duration": "10m"}],
            [],
            "start-hook",
        )
        created = create_rollout(c, plan)
        assert created["state"] == "running"
        wait_until(
            lambda: len(receiver.accepted("/start")) >= 1,
            "the start notification",
            detail=lambda: deliveries(c),
        )
    first = receiver.bodies("/start")[0]
    assert (first["details"]["from"], first["details"]["to"]) == ("pending", "running")
    assert first["type"] == "rollout.started", first["title"]


def test_a_target_still_missed_when_the_soak_ends_is_told_once_and_the_rollout_keeps_running(
    receiver: Receiver, manual_server: Server
) -> None:
    """2% of the treatment's requests fail: surely over the "< 0.1%" target, under the "> 5%" line. When the
    hour's soak ends the stage neither advances nor steps back; the channel hears `rollout.held` (a warning)
    once, with the value, the target and the samples, and not again on the ticks after."""
    flag = "notify-held"
    with manual_server.client() as c:
        webhook_channel(c, "held-hook", receiver.url("/held"))
        create_flag(c, flag)
        plan = notified_plan(
            flag,
            [
                {"name": "Half", "percentage": 50, "min_duration": "1h"},
                {"name": "Full", "percentage": 100, "min_duration": "1h"},
            ],
            [{"metric": "error_rate", "target": "< 0.1%", "rollback": "> 5%"}],
            "held-hook",
        )
        rid = create_rollout(c, plan)["id"]
        traffic = Traffic(c, flag, users=2000)
        for _ in range(3):
            traffic.send(fail_every=50)
            manual_server.advance("1m")
        assert rollout(c, rid)["timeline"][-1]["kind"] == "started"  # still soaking: nothing to tell yet
        manual_server.advance("1h")
        for _ in range(3):  # later ticks, the target still missed
            traffic.send(fail_every=50)
            manual_server.advance("1m")
        status = rollout(c, rid)
        assert (status["state"], status["stage"]["number"]) == ("running", 1), summary(status)
        # What comes after: a pause by hand, heard once everything queued before it was delivered.
        command(c, rid, "pause", "looking into the errors", by="sam")
        wait_until(
            lambda: (
                "rollout.paused" in [b["type"] for b in receiver.bodies("/held")] and settled(c, "held-hook")
            ),
            "the pause's notification",
            detail=lambda: deliveries(c, "held-hook"),
        )
    told = {b["id"]: b for b in receiver.bodies("/held")}.values()  # at least once: duplicates share an id
    assert [b["type"] for b in told] == ["rollout.started", "rollout.held", "rollout.paused"], told
    held = next(b for b in told if b["type"] == "rollout.held")
    assert held["severity"] == "warning"
    assert (held["details"]["from"], held["details"]["to"], held["details"]["to_stage"]) == (
        "running",
        "running",
        1,
    )
    reason = held["details"]["reason"]
    errors = next(e for e in held["details"]["evidence"] if e["metric"] == "error_rate")
    assert errors["verdict"] == "warn" and 0.015 < errors["value"] < 0.025, errors  # about 2%
    assert errors["samples"] >= 3000 and "< 0.1%" in errors["threshold"], errors
    assert f"error_rate = {errors['value']:.4g} misses < 0.1% (n = {errors['samples']})" in reason, reason
    assert "holding until it is met or a change" in reason, reason


# ---------------------------------------------------------------- (e) secrets are never shown back


def test_secrets_are_never_shown_back(manual_server: Server) -> None:
    secrets = {
        "webhook": "webhook-signing-secret-4711",
        "email": "smtp-password-0815",
        "pagerduty": "pd-routing-key-c0ffee",
    }
    bodies: list[dict[str, Any]] = [
        {
            "name": "masked-hook",
            "type": "webhook",
            "url": "http://127.0.0.1:9/hook",
            "secret": secrets["webhook"],
        },
        {
            "name": "masked-mail",
            "type": "email",
            "host": "127.0.0.1",
            "port": 2525,
            "from": "rampup@example.com",
            "to": ["ops@example.com"],
            "starttls": True,
            "username": "rampup",
            "password": secrets["email"],
        },
        {
            "name": "masked-pager",
            "type": "pagerduty",
            "routing_key": secrets["pagerduty"],
            "min_severity": "critical",
        },
    ]
    masked_field = {"masked-hook": "secret", "masked-mail": "password", "masked-pager": "routing_key"}
    with manual_server.client() as c:
        for body in bodies:
            r = c.post("/api/v1/channels", json=body)
            assert r.status_code == 201, r.text
            shown = r.json()
            assert shown[masked_field[body["name"]]] == "********"
            for secret in secrets.values():
                assert secret not in r.text
        listed = c.get("/api/v1/channels")
        assert listed.status_code == 200
        assert {ch["name"] for ch in listed.json()} >= set(masked_field)
        responses = [listed] + [c.get(f"/api/v1/channels/{name}") for name in masked_field]
        for r in responses:
            assert r.status_code == 200, r.text
            for secret in secrets.values():
                assert secret not in r.text, r.text
        for name, key in masked_field.items():
            shown = c.get(f"/api/v1/channels/{name}").json()
            assert shown[key] == "********", shown
            assert shown["name"] == name
        mail = c.get("/api/v1/channels/masked-mail").json()
        assert (mail["username"], mail["host"], mail["port"], mail["to"]) == (
            "rampup",
            "127.0.0.1",
            2525,
            ["ops@example.com"],
        )  # what is not secret stays readable
        assert (
            c.get("/api/v1/channels/masked-pager").json()["url"].startswith("https://")
        )  # the default Events API URL

        # The audit log records each creation (and deletion) without the secrets.
        assert c.delete("/api/v1/channels/masked-hook").status_code == 204
        assert c.get("/api/v1/channels/masked-hook").status_code == 404
        for name in masked_field:
            r = c.get("/api/v1/audit", params={"target": f"channel:{name}", "limit": 100})
            assert r.status_code == 200, r.text
            assert "channel.create" in [e["action"] for e in r.json()], r.text
            for secret in secrets.values():
                assert secret not in r.text, r.text
        r = c.get("/api/v1/audit", params={"limit": 1000})
        assert "channel.delete" in [e["action"] for e in r.json()]
        for secret in secrets.values():
            assert secret not in r.text

    listed_cli = rampup_at(manual_server, "channel", "list", "--json")
    assert listed_cli.returncode == 0, listed_cli.stderr
    for secret in secrets.values():
        assert secret not in listed_cli.stdout


# ---------------------------------------------------------------- (f) bad channels


BAD_CHANNELS = [
    ({"name": "Bad Name", "type": "slack", "url": "https://hooks.example.com/x"}, "name"),
    ({"type": "slack", "url": "https://hooks.example.com/x"}, "name"),
    ({"name": "x", "type": "carrier-pigeon"}, "type"),
    ({"name": "x", "type": "slack"}, "url"),
    ({"name": "x", "type": "slack", "url": "ftp://example.com"}, "url"),
    (
        {"name": "x", "type": "slack", "url": "https://hooks.example.com/x", "secret": "whatever-it-is"},
        "secret",
    ),
    ({"name": "x", "type": "webhook", "url": "https://example.com/hook"}, "secret"),
    ({"name": "x", "type": "webhook", "url": "https://example.com/hook", "secret": "short"}, "secret"),
    ({"name": "x", "type": "webhook", "url": "not a url", "secret": "long-enough-secret"}, "url"),
    ({"name": "x", "type": "email", "port": 25, "from": "a@example.com", "to": ["b@example.com"]}, "host"),
    (
        {
            "name": "x",
            "type": "email",
            "host": "smtp",
            "port": 70000,
            "from": "a@example.com",
            "to": ["b@example.com"],
        },
        "port",
    ),
    (
        {
            "name": "x",
            "type": "email",
            "host": "smtp",
            "port": "25",
            "from": "a@example.com",
            "to": ["b@example.com"],
        },
        "port",
    ),
    ({"name": "x", "type": "email", "host": "smtp", "from": "nobody", "to": ["b@example.com"]}, "from"),
    ({"name": "x", "type": "email", "host": "smtp", "from": "a@example.com", "to": "b@example.com"}, "to"),
    ({"name": "x", "type": "email", "host": "smtp", "from": "a@example.com", "to": []}, "to"),
    (
        {
            "name": "x",
            "type": "email",
            "host": "smtp",
            "from": "a@example.com",
            "to": ["b@example.com"],
            "starttls": "yes",
        },
        "starttls",
    ),
    (
        {
            "name": "x",
            "type": "email",
            "host": "smtp",
            "from": "a@example.com",
            "to": ["b@example.com"],
            "password": 1234,
        },
        "password",
    ),
    ({"name": "x", "type": "pagerduty"}, "routing_key"),
    ({"name": "x", "type": "pagerduty", "routing_key": "abc", "url": "events.pagerduty.com"}, "url"),
    (
        {"name": "x", "type": "slack", "url": "https://hooks.example.com/x", "min_severity": "loud"},
        "min_severity",
    ),
]


def test_bad_channels_are_refused_with_where_and_duplicates_conflict(manual_server: Server) -> None:
    with manual_server.client() as c:
        before = c.get("/api/v1/channels").json()
        for body, where in BAD_CHANNELS:
            r = c.post("/api/v1/channels", json=body)
            assert r.status_code == 422, f"{body}: {r.status_code} {r.text}"
            error = r.json()["error"]
            assert error["where"] == where, f"{body}: {error}"
            assert error["code"] and error["message"]
        assert c.get("/api/v1/channels").json() == before

        good = {"name": "rollout-channel", "type": "slack", "url": "https://hooks.example.com/x"}
        assert c.post("/api/v1/channels", json=good).status_code == 201
        again = c.post("/api/v1/channels", json={**good, "url": "https://hooks.example.com/other"})
        assert again.status_code == 409, again.text
        assert "rollout-channel" in again.json()["error"]["message"]
        assert c.get("/api/v1/channels/rollout-channel").json()["url"] == "https://hooks.example.com/x"
        assert c.get("/api/v1/channels/nope").status_code == 404
        assert c.post("/api/v1/channels/nope/test").status_code == 404
        assert c.delete("/api/v1/channels/nope").status_code == 404

        # A plan may only notify through a channel's name; a write token may not create channels.
        r = c.post("/api/v1/tokens", json={"scope": "write", "name": "ci"})
        assert r.status_code == 201, r.text
        with manual_server.client(r.json()["token"]) as writer:
            assert writer.post("/api/v1/channels", json={**good, "name": "other"}).status_code == 403


# ---------------------------------------------------------------- (g) delivery status and the CLI


def test_delivery_status_in_the_api_and_the_cli_and_channel_test(
    receiver: Receiver, manual_server: Server
) -> None:
    down = Receiver(SECRET)
    down.refusing = True
    try:
        with manual_server.client() as c:
            webhook_channel(c, "up-hook", receiver.url("/up"))
            webhook_channel(c, "down-hook", down.url("/down"))
            first = c.post("/api/v1/channels/down-hook/test")
            assert first.status_code == 202, first.text
            second = c.post("/api/v1/channels/down-hook/test")
            assert second.status_code == 202, second.text
            wait_until(lambda: len(down.refused("/down")) >= 1, "the first refused delivery")

            # `rampup channel test` queues a `test` notification; it arrives, signed, with the id it printed.
            tested = rampup_at(manual_server, "channel", "test", "up-hook")
            assert tested.returncode == 0, tested.stderr
            wait_until(
                lambda: len(receiver.accepted("/up")) >= 1,
                "the test notification",
                detail=lambda: deliveries(c),
            )
            body = receiver.bodies("/up")[0]
            assert body["type"] == "test" and body["id"] in tested.stdout, (body, tested.stdout)
            assert [p.problem for p in receiver.snapshot("/up") if p.problem] == []
            assert "up-hook" in tested.stdout

            # The receiver has the body a moment before the server records the delivery.
            wait_until(
                lambda: {d["notification_id"]: d for d in deliveries(c)}[body["id"]]["status"] == "delivered",
                "the delivery to be recorded",
                detail=lambda: deliveries(c),
            )
            rows = {d["notification_id"]: d for d in deliveries(c)}
            failing = rows[first.json()["notification_id"]]
            pending = rows[second.json()["notification_id"]]
            delivered = rows[body["id"]]
            assert failing["status"] == "failing" and failing["attempts"] >= 1, failing
            assert "503" in failing["last_error"] and failing["channel"] == "down-hook", failing
            assert failing["delivered_at"] is None
            # Ordered per destination: the second waits behind the failing first and is never tried meanwhile.
            assert (
                pending["status"] == "pending" and pending["attempts"] == 0 and pending["last_error"] is None
            )
            assert {p.body["id"] for p in down.snapshot("/down")} == {first.json()["notification_id"]}
            assert (
                delivered["status"] == "delivered"
                and delivered["delivered_at"]
                and delivered["attempts"] == 1
            )
            assert delivered["type"] == "test" and delivered["channel"] == "up-hook"
            for row in (failing, pending, delivered):
                assert row["created_at"] and row["type"] == "test"

            # The CLI shows the same three, with the last error.
            shown = rampup_at(manual_server, "notifications")
            assert shown.returncode == 0, shown.stderr
            for word in ("failing", "pending", "delivered", "down-hook", "up-hook", "503"):
                assert word in shown.stdout, f"{word!r} not in:\n{shown.stdout}"
            as_json = rampup_at(manual_server, "notifications", "--json")
            assert as_json.returncode == 0, as_json.stderr
            statuses = Counter(
                r["status"] for r in json.loads(as_json.stdout) if r["channel"] in ("up-hook", "down-hook")
            )
            assert statuses == Counter({"failing": 1, "pending": 1, "delivered": 1}), statuses

            # The receiver recovers: both go out, in order, and the status follows.
            down.refusing = False
            keep_time_moving_until(
                manual_server, lambda: len(down.accepted("/down")) >= 2, "the recovered deliveries", c
            )
            assert [b["id"] for b in down.bodies("/down")] == [
                first.json()["notification_id"],
                second.json()["notification_id"],
            ]
            wait_until(  # again, the receiver has the bodies a moment before the server records them
                lambda: settled(c, "up-hook", "down-hook"),
                "every delivery recorded as delivered",
                detail=lambda: deliveries(c),
            )
            missing = rampup_at(manual_server, "channel", "test", "no-such-channel")
            assert missing.returncode != 0 and "no-such-channel" in missing.stderr, missing
    finally:
        down.close()


def test_a_dead_channel_with_a_long_queue_does_not_hold_up_the_others(
    receiver: Receiver, make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    """Ordered per destination, not globally: a channel that has been down for a while (hundreds of queued
    notifications) must not keep a healthy channel's notifications from going out. On a server of its own: the
    dead channel's queue outlives the test."""
    down = Receiver(SECRET)
    down.refusing = True
    try:
        server = start(server_factory, make_database_url("sqlite"))
        with server.client() as c:
            webhook_channel(c, "dead-hook", down.url("/dead"))
            webhook_channel(c, "live-hook", receiver.url("/live"))
            for _ in range(250):
                assert c.post("/api/v1/channels/dead-hook/test").status_code == 202
            sent = c.post("/api/v1/channels/live-hook/test")
            assert sent.status_code == 202, sent.text
            wait_until(
                lambda: len(receiver.accepted("/live")) >= 1,
                "the healthy channel's notification behind a dead channel's long queue",
                detail=lambda: [d for d in deliveries(c) if d["channel"] == "live-hook"],
            )
            assert receiver.bodies("/live")[0]["id"] == sent.json()["notification_id"]
            assert {p.body["id"] for p in down.snapshot("/dead")} <= {
                d["notification_id"] for d in deliveries(c, "dead-hook")
            }
    finally:
        down.close()


# ---------------------------------------------------------------- (h) tag filters and re-notify


def test_an_alert_rule_with_tags_counts_only_those_events_and_renotifies_while_firing(
    receiver: Receiver, manual_server: Server
) -> None:
    with manual_server.client() as c:
        env = new_environment(c, "tagged")
        webhook_channel(c, "checkout-hook", receiver.url("/checkout"))
        tagged = c.post(
            "/api/v1/alert-rules",
            json={
                "name": "Checkout errors",
                "environment": env,
                "metric": "error_rate",
                "condition": "> 0.5%",
                "window": "2s",
                "tags": {"route": "/checkout"},
                "channels": ["checkout-hook"],
                "renotify": "1s",
            },
        )
        assert tagged.status_code == 201, tagged.text
        tagged_id = tagged.json()["id"]
        assert tagged.json()["tags"] == {"route": "/checkout"}
        # A control rule over the whole environment, to show the failures below are counted at all.
        control = c.post(
            "/api/v1/alert-rules",
            json={
                "environment": env,
                "metric": "error_rate",
                "condition": "> 0.5%",
                "window": "2s",
                "channels": [],
            },
        )
        assert control.status_code == 201, control.text

        def firing() -> dict[int, bool]:
            return {r["id"]: r["firing"] for r in c.get("/api/v1/alert-rules").json()}

        def queued() -> list[str]:
            return [d["type"] for d in reversed(deliveries(c, "checkout-hook"))]

        def checkouts(fail_every: int | None = None) -> None:
            send_requests(
                c, 100, fail_every=fail_every, tags={"route": "/checkout"}, prefix="checkout", environment=env
            )

        # Failures on another route, healthy checkouts: the control fires, the tagged rule does not.
        send_requests(c, 100, fail_every=2, tags={"route": "/search"}, prefix="search", environment=env)
        checkouts()
        manual_server.advance("0.5s")  # a raw-event window ends before `now`: tick just after the events
        state = firing()
        assert state[control.json()["id"]] is True, state
        assert state[tagged_id] is False, state
        assert queued() == []

        # Failing checkouts: it fires, and is re-sent every second (of the clock) while it keeps failing.
        checkouts(fail_every=5)
        manual_server.advance("0.5s")
        assert queued() == ["alert.firing"]
        checkouts(fail_every=5)
        manual_server.advance("0.5s")
        assert queued() == ["alert.firing"], "re-sent every second, not every tick"
        for _ in range(2):
            checkouts(fail_every=5)
            manual_server.advance("1s")
        assert queued() == ["alert.firing"] * 3
        assert firing()[tagged_id] is True

        # Checkouts recover (other routes still fail): once the window has passed the failures, it resolves, once.
        for _ in range(10):
            checkouts()
            send_requests(c, 100, fail_every=2, tags={"route": "/search"}, prefix="search", environment=env)
            manual_server.advance("1s")
            if "alert.resolved" in queued():
                break
        assert queued()[-1] == "alert.resolved", queued()
        manual_server.advance("1s")
        sent = len(queued())
        wait_until(
            lambda: len(receiver.bodies("/checkout")) == sent and settled(c, "checkout-hook"),
            "every notification at the webhook",
            detail=lambda: deliveries(c),
        )
        bodies = receiver.bodies("/checkout")

    types = [b["type"] for b in bodies]
    assert types[-1] == "alert.resolved" and types.count("alert.resolved") == 1, types
    assert set(types[:-1]) == {"alert.firing"} and len(types) >= 4, types
    assert len({b["id"] for b in bodies}) == len(bodies), "each re-send is its own notification"
    assert len({b["dedup_key"] for b in bodies}) == 1, "firing, re-sends and resolved share the incident key"
    assert all(b["details"]["rule_id"] == tagged_id for b in bodies)
    assert all(b["details"]["rule"]["tags"] == {"route": "/checkout"} for b in bodies)
    gaps = [datetime.fromisoformat(b["at"]) for b in bodies[:-1]]
    assert all(
        later - earlier >= timedelta(seconds=0.9) for earlier, later in zip(gaps, gaps[1:], strict=False)
    ), gaps
