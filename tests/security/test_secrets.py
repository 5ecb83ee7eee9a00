"""Secrets stay secret. A Slack or webhook URL is a credential; whoever reads it can post. Every view
(channels over the API and the command line, the audit log, deliveries, a rollout's plan, the dashboard) shows
it masked, to every scope."""

from collections.abc import Callable

import httpx

from tests.support.cli import rampup_at
from tests.support.receivers import Receiver
from tests.support.rollouts import create_rollout, drive
from tests.support.servers import FAST, Server
from tests.support.tokens import new_token
from tests.support.waiting import wait_until
from tests.web.signin import signed_in

SLACK = "https://hooks.slack.com/services/T0123ABCD/B0456EFGH/slackSecretPathToken42"
PD_URL = "https://events.pagerduty.example/v2/enqueue?integration=pdSecretQuery77"
HOOK_TOKEN = "hookSecretPathToken9f8e7d"
QUERY_TOKEN = "querySecret31337"
USER_INFO = "userInfoSecret"
SECRETS = ["slackSecretPathToken42", "B0456EFGH", "pdSecretQuery77", HOOK_TOKEN, QUERY_TOKEN, USER_INFO]


def assert_masked(where: str, text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{where} shows {secret!r}: {text[:3000]}"


def test_urls_are_masked_in_every_view_for_every_scope(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = server_factory(make_database_url("sqlite"), extra_env=FAST, manual_clock=True)
    with Receiver() as receiver, server.client() as admin:
        hook = f"http://{USER_INFO}:pw@127.0.0.1:{receiver.httpd.server_address[1]}/in/{HOOK_TOKEN}?t={QUERY_TOKEN}"
        channels = [
            {"name": "team-slack", "type": "slack", "url": SLACK},
            {"name": "hook", "type": "webhook", "url": hook, "secret": "a-long-shared-secret"},
            {"name": "pager", "type": "pagerduty", "routing_key": "rk", "url": PD_URL},
        ]
        for body in channels:
            r = admin.post("/api/v1/channels", json=body)
            assert r.status_code == 201, r.text
            assert_masked("the created channel", r.text)
        assert admin.get("/api/v1/channels/team-slack").json()["url"] == (
            "https://hooks.slack.com/services/T0…/***"
        )
        assert admin.post("/api/v1/channels/hook/test").status_code == 202
        assert admin.post("/api/v1/flags", json={"key": "masked", "type": "boolean"}).status_code == 201
        plan = {
            "name": "masked-plan",
            "flag": "masked",
            "environment": "production",
            "stages": [{"name": "all", "percentage": 100}],
            "notify": ["hook"],
            "hooks": {"webhook": hook},
        }
        rid = create_rollout(admin, plan)
        drive(server, admin, rid, lambda s: s["state"] == "completed", what="completion")
        wait_until(
            lambda: len(receiver.snapshot()) >= 3, "the test, the transitions and the stage hook delivered"
        )

    for scope in ("read", "write", "admin"):
        token = server.admin_token if scope == "admin" else new_token(server, scope, f"{scope}-viewer")
        with server.client(token) as c:
            for path in (
                "/api/v1/channels",
                "/api/v1/channels/hook",
                "/api/v1/channels/pager",
                "/api/v1/audit?limit=1000",
                "/api/v1/notifications",
                "/api/v1/rollouts",
                f"/api/v1/rollouts/{rid}",
            ):
                r = c.get(path)
                assert r.status_code == 200, (path, r.text)
                assert_masked(f"{path} to a {scope} token", r.text)
            shown = c.get(f"/api/v1/rollouts/{rid}").json()["plan"]["hooks"]["webhook"]
            assert shown == f"http://***@127.0.0.1:{receiver.httpd.server_address[1]}/in/ho…?***", shown
        browser = signed_in(server, token)
        for page in ("/", f"/rollouts/{rid}", "/deliveries", "/audit"):
            r = browser.get(page)
            assert r.status_code == 200, (page, r.text[:500])
            assert_masked(f"the dashboard's {page} to a {scope} token", r.text)
        browser.close()
        listed = rampup_at(server, "channel", "list", token=token)
        assert listed.returncode == 0, listed.stderr
        assert "hooks.slack.com/services/T0…/***" in listed.stdout
        assert_masked("rampup channel list", listed.stdout)


def test_a_failing_hook_delivery_shows_its_url_masked(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    """A plan webhook whose host does not resolve: the delivery names it masked, and says why it failed."""
    server = server_factory(make_database_url("sqlite"), extra_env=FAST, manual_clock=True)
    with server.client() as admin:
        assert admin.post("/api/v1/flags", json={"key": "nowhere", "type": "boolean"}).status_code == 201
        plan = {
            "name": "nowhere",
            "flag": "nowhere",
            "environment": "production",
            "stages": [{"name": "all", "percentage": 100}],
            "hooks": {"webhook": f"https://{USER_INFO}@nowhere.invalid/{HOOK_TOKEN}"},
        }
        create_rollout(admin, plan)
        server.advance("1s")

        def failed() -> list[dict[str, str]]:
            r: httpx.Response = admin.get("/api/v1/notifications")
            return [d for d in r.json() if d["kind"] == "hook.webhook" and d["last_error"]]

        wait_until(failed, "the hook delivery failed")
        r = admin.get("/api/v1/notifications")
        delivery = failed()[0]
    assert_masked("/api/v1/notifications", r.text)
    assert delivery["channel"] == "https://***@nowhere.invalid/ho…", delivery
    assert delivery["last_error"].startswith("nowhere.invalid does not resolve"), delivery
