"""The dashboard in Chromium against a real `rampup serve`: sign in with the keyboard, follow a rollout as the
controller moves it (no reload), act with a reason and find it in the audit log, pull a kill switch from the
flag's page, a read token refused, a form without its CSRF token refused, the connection-lost state, 375 px.

Every test also fails on any request to another host and on any console error (see conftest.py). The server
ticks fast; tests wait for conditions, never for a fixed time.
"""

import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from rampup.core.bucketing import in_rollout
from tests.browser.conftest import Watch
from tests.support.servers import Server, start_server
from tests.support.waiting import PATIENCE_S, wait_until

FAST = {"RAMPUP_TICK_S": "0.2", "RAMPUP_LIVE_CHECK_S": "0.2"}

pytestmark = pytest.mark.usefixtures("chromium")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("browser")
    s = start_server(f"sqlite:///{folder / 'rampup.db'}", folder / "server.log", extra_env=FAST)
    yield s
    s.stop()


Open = Callable[..., tuple[BrowserContext, Watch]]


def sign_in(context: BrowserContext, base: str, token: str) -> Page:
    page = context.new_page()
    page.goto(base + "/rollouts")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=/rollouts$"))
    expect(page.locator("#token")).to_be_focused()  # typed straight away, sent with Enter
    page.keyboard.type(token)
    page.keyboard.press("Enter")
    expect(page).to_have_url(base + "/rollouts")
    return page


def api(server: Server) -> httpx.Client:
    return server.client()


def new_flag(server: Server, rollout: float | None = None) -> str:
    key = f"checkout-{uuid.uuid4().hex[:6]}"
    with api(server) as c:
        assert (
            c.post("/api/v1/flags", json={"key": key, "description": "The new checkout"}).status_code == 201
        )
        if rollout is not None:
            r = c.put(
                f"/api/v1/flags/{key}/environments/production", json={"enabled": True, "rollout": rollout}
            )
            assert r.status_code == 200
    return key


def start_rollout(server: Server, flag: str) -> int:
    plan = {
        "name": f"{flag}-rollout",
        "flag": flag,
        "environment": "production",
        "stages": [
            {"name": "Early Access", "percentage": 10, "min_duration": "1s"},
            {
                "name": "Expanded",
                "percentage": 25,
                "min_duration": "1h",
                "prerequisites": ["Support team ready"],
            },
            {"name": "General", "percentage": 50, "min_duration": "1h"},
            {"name": "Full Rollout", "percentage": 100, "min_duration": "1h", "approval": "required"},
        ],
        # Warn-only gates: judged and drawn, but they never hold a stage, so the test decides when it moves.
        "gates": [
            {"metric": "error_rate", "warn": "> 5%"},
            {"metric": "api_latency_p95", "warn": "> 1000ms"},
            {"metric": "lcp_p75", "warn": "> 4s"},
        ],
    }
    with api(server) as c:
        r = c.post("/api/v1/rollouts", json={"plan": plan})
        assert r.status_code == 201, r.text
        return int(r.json()["id"])


def rollout_state(server: Server, rollout_id: int) -> dict[str, Any]:
    with api(server) as c:
        return c.get(f"/api/v1/rollouts/{rollout_id}").json()  # type: ignore[no-any-return]


def send_traffic(server: Server, flag: str, percentage: float, since: datetime, users: int = 400) -> None:
    """Requests and page loads from a pool of users since `since`, attributed as an SDK would, the treatment a
    little slower."""
    with api(server) as c:
        token = c.post("/api/v1/tokens", json={"scope": "ingest", "environment": "production", "name": "t"})
        ingest = httpx.Client(
            base_url=server.url,
            headers={"Authorization": f"Bearer {token.json()['token']}"},
            timeout=PATIENCE_S,
        )
    now = datetime.now(UTC)
    events = []
    for i in range(users):
        user = f"user-{i}"
        on = in_rollout(flag, user, percentage)
        at = (since + (now - since) * (i / users)).isoformat()
        flags = {flag: on}
        events.append(
            {
                "type": "request",
                "timestamp": at,
                "targeting_key": user,
                "flags": flags,
                "duration_ms": 180 + (i % 7) * 20 + (60 if on else 0),
                "ok": i % 97 != 0,
            }
        )
        events.append(
            {
                "type": "page_load",
                "timestamp": at,
                "targeting_key": user,
                "flags": flags,
                "lcp_ms": 1700 + (i % 11) * 40 + (200 if on else 0),
            }
        )
    r = ingest.post("/api/v1/events", json={"events": events})
    assert r.status_code == 202, r.text


def test_a_rollout_followed_live_then_paused_with_a_reason_found_in_the_audit_log(
    server: Server, open_context: Open, screenshot: Callable[[object, str], Path]
) -> None:
    flag = new_flag(server)
    rollout_id = start_rollout(server, flag)
    context, _ = open_context(server.url)
    page = sign_in(context, server.url, server.admin_token)

    page.goto(f"{server.url}/rollouts/{rollout_id}")
    expect(page.locator("#rollout-state")).to_have_text("awaiting approval")
    expect(page.locator("#stage-label")).to_have_text("Stage 1 of 4 · 10%")
    expect(page.locator(".signoffs li")).to_contain_text("Stage 2 (Expanded): “Support team ready”")
    page.evaluate("window.__sameDocument = true")

    with api(server) as c:  # someone else signs off; the controller moves the rollout on
        r = c.post(
            f"/api/v1/rollouts/{rollout_id}/signoff",
            json={"prerequisite": "Support team ready", "by": "dana"},
        )
        assert r.status_code == 200, r.text
    expect(page.locator("#stage-label")).to_have_text("Stage 2 of 4 · 25%")
    expect(page.locator("#rollout-state")).to_have_text("running")
    expect(page.locator("#rollout-timeline")).to_contain_text("signed off 'Support team ready' for stage 2")
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded instead of updating itself"

    # Traffic until the stage's gates have it (a stage's numbers start at the second after it began).
    entered = datetime.fromisoformat(rollout_state(server, rollout_id)["stage"]["entered_at"])

    def seen() -> bool:
        if any(g["samples"] for g in rollout_state(server, rollout_id)["gates"]):
            return True
        send_traffic(server, flag, 25, entered)
        return False

    wait_until(seen, "the gates to see the traffic")
    page.reload()
    expect(page.locator("#rollout-gates tr[data-metric='api_latency_p95']")).to_contain_text(
        re.compile(r"\d+ ms")
    )
    expect(page.locator("#rollout-charts svg.chart polyline.series")).to_have_count(6)
    expect(page.locator("#rollout-charts svg.chart line.threshold")).not_to_have_count(0)
    shown = page.locator("#main time").first
    assert shown.get_attribute("title").endswith("UTC")  # type: ignore[union-attr]
    assert shown.text_content() != shown.get_attribute("title")  # shown in the browser's zone, UTC on hover
    screenshot(page, "rollout")

    page.locator("#act-pause summary").click()
    page.locator("#act-pause textarea[name=reason]").fill("Support queue is long, holding for the afternoon")
    page.locator("#act-pause input[name=confirm]").check()
    page.locator("#act-pause button[type=submit]").click()
    expect(page.locator("#flash")).to_contain_text("pause done as admin")
    expect(page.locator("#rollout-state")).to_have_text("paused")
    assert rollout_state(server, rollout_id)["state"] == "paused"

    page.goto(f"{server.url}/audit")
    page.get_by_label("Action").fill("rollout.pause")
    page.get_by_label("Target").fill(f"rollout:{rollout_id}")
    page.get_by_role("button", name="Filter").click()
    row = page.locator("table.audit tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Support queue is long, holding for the afternoon")
    expect(row.locator("td").nth(1)).to_have_text("admin")

    page.goto(f"{server.url}/reports/{rollout_id}/daily")
    report = page.frame_locator("iframe.report")
    expect(report.locator("h1")).to_contain_text("Daily Report")
    expect(report.locator("svg")).not_to_have_count(0)

    page.goto(server.url + "/")
    expect(page.locator("#overview-live")).to_contain_text(f"{flag}-rollout")
    screenshot(page, "overview")


def test_the_kill_switch_pulled_from_the_flag_page_and_the_tester(
    server: Server, open_context: Open, screenshot: Callable[[object, str], Path]
) -> None:
    flag = new_flag(server, rollout=30)
    context, _ = open_context(server.url)
    page = sign_in(context, server.url, server.admin_token)
    page.goto(f"{server.url}/flags?q={flag[-6:]}")
    page.get_by_role("link", name=flag).click()
    expect(page.locator("#flag-now")).to_contain_text("on for 30% of users")

    page.get_by_label("Targeting key (user id)").fill("user-7")
    page.get_by_role("button", name="Evaluate").click()
    expected = "on" if in_rollout(flag, "user-7", 30) else "off"
    expect(page.locator("#eval-variant")).to_have_text(expected)
    expect(page.locator("#eval-reason")).to_have_text("SPLIT")
    screenshot(page, "flag")

    page.locator("#kill-switch summary").click()
    page.locator("#kill-switch textarea[name=reason]").fill("Checkout errors spiking in production")
    page.locator("#kill-switch input[name=confirm]").check()
    page.locator("#kill-switch button[type=submit]").click()
    expect(page.locator("#flash")).to_contain_text(f"Kill switch pulled: {flag} is off in production")
    expect(page.locator("#flag-now")).to_contain_text("off for everyone")
    expect(page.locator("#flag-history tbody tr").first).to_contain_text(
        "Checkout errors spiking in production"
    )
    with api(server) as c:
        assert c.get(f"/api/v1/flags/{flag}/environments/production").json()["enabled"] is False


def test_a_read_token_is_refused_and_a_form_without_its_csrf_token_too(
    server: Server, open_context: Open
) -> None:
    flag = new_flag(server, rollout=20)
    with api(server) as c:
        read = c.post("/api/v1/tokens", json={"scope": "read", "name": "auditor"}).json()["token"]
    reader_context, reader_watch = open_context(server.url)
    reader_watch.expected_errors.append("status of 403")
    reader = sign_in(reader_context, server.url, read)
    reader.goto(f"{server.url}/flags/{flag}")
    expect(reader.locator("#flag-now")).to_contain_text("on for 20%")
    expect(reader.locator("#kill-switch")).to_have_count(0)
    expect(reader.get_by_role("link", name="Tokens")).to_have_count(0)
    csrf = reader.locator("input[name=csrf]").first.input_value()
    answer = reader_context.request.post(
        f"{server.url}/flags/{flag}/environments/production/kill",
        form={"csrf": csrf, "reason": "not allowed", "confirm": "yes"},
    )
    assert answer.status == 403 and "read token" in answer.text()

    admin_context, admin_watch = open_context(server.url)
    admin_watch.expected_errors.append("status of 403")
    page = sign_in(admin_context, server.url, server.admin_token)
    page.goto(f"{server.url}/flags/{flag}")
    page.locator("#kill-switch summary").click()
    page.locator("#kill-switch input[name=csrf]").evaluate("input => input.remove()")
    page.locator("#kill-switch textarea[name=reason]").fill("a forged form")
    page.locator("#kill-switch input[name=confirm]").check()
    page.locator("#kill-switch button[type=submit]").click()
    expect(page.locator("[role=alert]").last).to_contain_text("CSRF check failed")
    with api(server) as c:
        assert c.get(f"/api/v1/flags/{flag}/environments/production").json()["enabled"] is True


def test_readable_at_375_px_and_says_when_the_connection_is_lost(tmp_path: Path, open_context: Open) -> None:
    own = start_server(f"sqlite:///{tmp_path / 'lost.db'}", tmp_path / "lost.log", extra_env=FAST)
    try:
        context, watch = open_context(own.url, viewport={"width": 375, "height": 800})
        watch.expected_errors += [
            "ERR_CONNECTION_REFUSED",
            "ERR_INCOMPLETE_CHUNKED_ENCODING",
        ]  # the server stops
        page = sign_in(context, own.url, own.admin_token)
        for path in ["/", "/flags/workstation", "/audit"]:
            page.goto(own.url + path)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"{path} is {width} px wide at 375"
        expect(page.locator("#live-status")).to_have_text("live")
        expect(page.locator("#connection-lost")).to_be_hidden()
    finally:
        own.stop()
    expect(page.locator("#connection-lost")).to_be_visible()
    expect(page.locator("#live-status")).to_have_text("connection lost")
