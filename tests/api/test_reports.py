"""Reports end to end: a real `rampup serve`, telemetry posted over HTTP, reports read back as Markdown and HTML,
schedules managed over the API, the completion report delivered by e-mail (HTML with its charts) and webhook when
the rollout ends, and the `rampup report` commands."""

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cli import rampup_at
from tests.support.receivers import Mailbox, Receiver, smtp_server
from tests.support.servers import FAST, Server
from tests.support.waiting import PATIENCE_S, wait_until

ENV = "production"
FLAG = "report-ws"
PLAN = {
    "name": "report-ws-rollout",
    "flag": FLAG,
    "environment": ENV,
    "stages": [
        {"name": "Early Access", "percentage": 10, "min_duration": "1h"},
        {"name": "Expanded", "percentage": 25, "min_duration": "1h"},
        {"name": "General", "percentage": 50, "min_duration": "1h"},
        {"name": "Full Rollout", "percentage": 100, "min_duration": "1h"},
    ],
    "gates": [
        {"metric": "error_rate", "target": "< 0.1%", "rollback": "> 0.5%", "disable": "> 1%", "for": "5m"},
        {"metric": "api_latency_p95", "target": "< 500ms", "rollback": "> 1000ms"},
        {"metric": "support_tickets", "compare": "baseline", "warn": "> +10%"},
    ],
}


@pytest.fixture
def webhook() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server() as (mailbox, port):
        yield mailbox, port


def traffic(c: httpx.Client, on_failures: int, off_failures: int) -> None:
    """One request from each of 200 users, 50 of them with the feature; failures among the first of each group."""
    events = [
        {
            "type": "request",
            "targeting_key": f"user-{i}",
            "flags": {FLAG: i < 50},
            "duration_ms": 100.0 + i,
            "ok": not (i < on_failures if i < 50 else i - 50 < off_failures),
        }
        for i in range(200)
    ]
    r = c.post("/api/v1/events", params={"environment": ENV}, json={"events": events})
    assert r.status_code == 202, r.text


def test_reports_from_real_data_on_demand_on_schedule_and_from_the_cli(
    make_database_url: Callable[[str], str],
    server_factory: Callable[..., Server],
    tmp_path: Path,
    webhook: Receiver,
    smtp: tuple[Mailbox, int],
) -> None:
    server = server_factory(make_database_url("sqlite"), extra_env=FAST, manual_clock=True)
    hook_url = webhook.url()
    inbox, smtp_port = smtp
    with server.client() as c:
        assert c.post("/api/v1/flags", json={"key": FLAG}).status_code == 201
        for body in (
            {"name": "rollout-channel", "type": "webhook", "url": hook_url, "secret": "a-long-shared-secret"},
            {
                "name": "support-email",
                "type": "email",
                "host": "127.0.0.1",
                "port": smtp_port,
                "from": "rampup@example.com",
                "to": ["support@example.com"],
            },
        ):
            assert c.post("/api/v1/channels", json=body).status_code == 201, body
        r = c.post("/api/v1/rollouts", json={"plan": PLAN})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        traffic(c, on_failures=1, off_failures=0)
        traffic(c, on_failures=0, off_failures=3)
        assert (
            c.post(
                "/api/v1/metrics", json={"metric": "support_tickets", "environment": ENV, "value": 4}
            ).status_code
            == 202
        )

        # On demand: the daily report, as Markdown, with the numbers just posted.
        r = c.get("/api/v1/reports/daily", params={"rollout": rid})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/markdown")
        md = r.text
        assert md.startswith("# Stage 1: 10% Rollout - Daily Report\n")
        lines = md.splitlines()
        assert "Rollout: 10% of users (stage 1 of 4)" in lines
        assert any(
            line.startswith("- Error Rate: 1% with the feature, 1% without (target: < 0.1%) — ")
            for line in lines
        ), md
        assert any(line.startswith("- API Response (p95): ") for line in lines), md
        assert "- Users Affected: 50 (25% of 200 users seen)" in lines
        assert "- Support tickets: 4 in the window" in md
        assert "- None in the last 24 hours." in lines

        r = c.get("/api/v1/reports/daily", params={"rollout": rid, "format": "html"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        svgs = re.findall(r"<svg .*?</svg>", r.text, re.DOTALL)
        assert len(svgs) == 2
        assert re.findall(r'data-variant="(\w+)"', svgs[0]) == ["on", "off"]
        assert '<line class="marker"' in svgs[0]  # the start, to 10%

        r = c.get("/api/v1/reports/support", params={"rollout": rid, "tz": "Europe/Berlin"})
        assert r.status_code == 200 and r.text.startswith("# Report Ws Rollout - Daily Status ")
        assert "- Support Tickets: 4" in r.text and "INCIDENTS: None" in r.text
        r = c.get("/api/v1/reports/weekly", params={"rollout": rid})
        assert r.status_code == 200 and "## PROGRESS THIS WEEK" in r.text

        # Wrong requests get the usual JSON errors.
        assert c.get("/api/v1/reports/daily", params={"rollout": 999}).status_code == 404
        assert c.get("/api/v1/reports/monthly", params={"rollout": rid}).status_code == 422
        bad = c.get("/api/v1/reports/daily", params={"rollout": rid, "tz": "Mars/Olympus"})
        assert bad.status_code == 422 and bad.json()["error"]["where"] == "timezone"
        assert (
            httpx.get(
                f"{server.url}/api/v1/reports/daily", params={"rollout": rid}, timeout=PATIENCE_S
            ).status_code
            == 401
        )

        # Schedules: a daily one (its first slot is in the future), and the completion report to both channels.
        r = c.post(
            "/api/v1/reports/schedules",
            json={
                "kind": "daily",
                "rollout_id": rid,
                "channels": ["rollout-channel"],
                "hour": 8,
                "timezone": "Europe/Berlin",
            },
        )
        assert r.status_code == 201, r.text
        daily = r.json()
        assert daily["next_at"] and daily["last_period"] is None
        r = c.post(
            "/api/v1/reports/schedules",
            json={
                "kind": "completion",
                "flag": FLAG,
                "environment": ENV,
                "channels": ["rollout-channel", "support-email"],
                "contact": "team@example.com",
            },
        )
        assert r.status_code == 201, r.text
        bad = c.post(
            "/api/v1/reports/schedules",
            json={
                "kind": "weekly",
                "rollout_id": rid,
                "channels": ["nowhere"],
                "hour": 8,
                "weekday": "friday",
            },
        )
        assert bad.status_code == 422 and bad.json()["error"]["where"] == "channels"
        assert [s["kind"] for s in c.get("/api/v1/reports/schedules").json()] == ["daily", "completion"]
        assert c.delete(f"/api/v1/reports/schedules/{daily['id']}").status_code == 204
        assert c.delete(f"/api/v1/reports/schedules/{daily['id']}").status_code == 404
        assert [s["kind"] for s in c.get("/api/v1/reports/schedules").json()] == ["completion"]

        # A person takes the rollout through every stage; its end sends the completion report, once.
        for _ in range(4):
            r = c.post(f"/api/v1/rollouts/{rid}/advance", json={"reason": "healthy", "by": "lee"})
            assert r.status_code == 200, r.text
        assert r.json()["state"] == "completed"
        server.advance("1s")  # the controller's tick sends what is due

        def reports() -> list[dict[str, Any]]:
            return [h for h in webhook.bodies() if h["type"] == "report.completion"]

        wait_until(lambda: bool(reports()), "the completion report by webhook")
        wait_until(lambda: bool(inbox.emails()), "the completion report by e-mail")
        for _ in range(3):  # more ticks: nothing is sent twice
            server.advance("1s")
        wait_until(
            lambda: all(d["status"] == "delivered" for d in c.get("/api/v1/notifications").json()),
            "every notification delivered",
        )
        (hooked,) = reports()
        assert hooked["title"] == "Report Ws Rollout - Completion Report"
        assert "- All 4 rollout stages completed; 100% of users have the feature since " in hooked["text"]
        assert "Contact: team@example.com" in hooked["text"]
        (mail,) = inbox.emails()
        assert mail["Subject"] == "Report Ws Rollout - Completion Report"
        html_part = mail.get_body(("html",))
        assert html_part is not None
        html = html_part.get_content()
        assert "Report Ws Rollout Completion Report" in html and html.count("<svg") == 2
        assert c.get("/api/v1/reports/schedules").json()[0]["last_period"] == f"rollout-{rid}"

    # The command line: Markdown on the terminal, HTML into a file, and the schedules.
    shown = rampup_at(server, "report", "completion", str(rid))
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("# Report Ws Rollout Completion Report\n")
    out = tmp_path / "daily.html"
    written = rampup_at(server, "report", "daily", str(rid), "--format", "html", "--out", str(out))
    assert written.returncode == 0, written.stderr
    assert out.read_text().startswith("<!DOCTYPE html>")
    added = rampup_at(
        server,
        "report",
        "schedule",
        "add",
        "weekly",
        "--rollout",
        str(rid),
        "-c",
        "rollout-channel",
        "--hour",
        "16",
        "--weekday",
        "friday",
        "--tz",
        "Europe/Berlin",
    )
    assert added.returncode == 0, added.stderr
    assert "the weekly report, Fris at 16:00 Europe/Berlin" in added.stdout
    listed = rampup_at(server, "report", "schedule", "list")
    assert (
        listed.returncode == 0 and "weekly report" in listed.stdout and "completion report" in listed.stdout
    )
    missing = rampup_at(server, "report", "daily", "999")
    assert missing.returncode == 1 and missing.stderr.strip() == "rampup: 404: rollout 999 not found"
