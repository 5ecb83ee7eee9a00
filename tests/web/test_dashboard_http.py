"""The dashboard over HTTP against a real `rampup serve`: sessions, CSRF, scopes, the tester, the live stream.

The browser tests (tests/browser/) drive the same pages in Chromium; these check what a browser hides: cookie
attributes, status codes, headers, and what an attacker would send by hand.
"""

import html
import json
import re
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.servers import Server, start_server
from tests.support.waiting import PATIENCE_S
from tests.web.signin import csrf_of, signed_in


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: each test works on flags and tokens of its own."""
    folder = tmp_path_factory.mktemp("web")
    server = start_server(f"sqlite:///{folder / 'rampup.db'}", folder / "server.log")
    yield server
    server.stop()


def state(server: Server, key: str) -> dict[str, object]:
    with server.client() as api:
        return api.get(f"/api/v1/flags/{key}/environments/production").json()  # type: ignore[no-any-return]


def new_flag(server: Server, rollout: float = 25) -> str:
    """A flag of the test's own, on in production at `rollout` percent."""
    key = f"f-{uuid.uuid4().hex[:8]}"
    with server.client() as api:
        assert api.post("/api/v1/flags", json={"key": key}).status_code == 201
        r = api.put(
            f"/api/v1/flags/{key}/environments/production", json={"enabled": True, "rollout": rollout}
        )
        assert r.status_code == 200, r.text
    return key


def kill_path(key: str) -> str:
    return f"/flags/{key}/environments/production/kill"


def make_token(server: Server, scope: str, name: str, environment: str | None = None) -> str:
    with server.client() as api:
        body = {"scope": scope, "name": name, **({"environment": environment} if environment else {})}
        r = api.post("/api/v1/tokens", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["token"])


def test_pages_ask_for_a_session_and_sign_in_sets_a_strict_cookie(web_server: Server) -> None:
    anonymous = httpx.Client(base_url=web_server.url, timeout=PATIENCE_S)
    r = anonymous.get("/flags/workstation")
    assert r.status_code == 303 and r.headers["location"] == "/sign-in?next=/flags/workstation"
    assert anonymous.get("/live").status_code == 401
    page = anonymous.get("/sign-in")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce
    wrong = anonymous.post("/sign-in", data={"nonce": nonce.group(1), "token": "rp_guess", "next": "/"})
    assert wrong.status_code == 401 and "unknown or revoked token" in wrong.text
    page = anonymous.get("/sign-in")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce
    r = anonymous.post(
        "/sign-in", data={"nonce": nonce.group(1), "token": web_server.admin_token, "next": "/flags"}
    )
    assert r.status_code == 303 and r.headers["location"] == "/flags"
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("rampup_session="))
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes
    assert "secure" not in attributes  # plain HTTP here; behind TLS the cookie is Secure
    assert anonymous.get("/flags").status_code == 200


def test_sign_in_refuses_program_tokens_foreign_forms_and_foreign_redirects(web_server: Server) -> None:
    c = httpx.Client(base_url=web_server.url, timeout=PATIENCE_S)
    sdk = make_token(web_server, "sdk", "web", "production")
    nonce = re.search(r'name="nonce" value="([^"]+)"', c.get("/sign-in").text)
    assert nonce
    r = c.post("/sign-in", data={"nonce": nonce.group(1), "token": sdk, "next": "/"})
    assert r.status_code == 403 and "sdk token is for programs" in r.text
    # a form posted from elsewhere has no nonce cookie to match
    stranger = httpx.Client(base_url=web_server.url, timeout=PATIENCE_S)
    r = stranger.post("/sign-in", data={"nonce": "x", "token": web_server.admin_token, "next": "/"})
    assert r.status_code == 403 and "rampup_session" not in r.headers.get("set-cookie", "")
    nonce = re.search(r'name="nonce" value="([^"]+)"', c.get("/sign-in").text)
    assert nonce
    r = c.post(
        "/sign-in",
        data={"nonce": nonce.group(1), "token": web_server.admin_token, "next": "//evil.example/x"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_two_instances_honour_one_session_and_its_sign_out(
    web_server: Server, server_factory: Callable[..., Server]
) -> None:
    """Two instances on one database, as behind a load balancer (on PostgreSQL too: tests/store/test_sessions.py)."""
    first = web_server
    second = server_factory(first.database_url, admin_token=first.admin_token)
    browser = signed_in(first)
    cookie = browser.cookies["rampup_session"]
    other = httpx.Client(base_url=second.url, cookies={"rampup_session": cookie}, timeout=PATIENCE_S)
    page = other.get("/")
    assert page.status_code == 200 and "Running rollouts" in page.text
    r = other.post("/sign-out", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 303 and r.headers["location"] == "/sign-in"
    assert browser.get("/").status_code == 303  # the first instance learnt it from the database


def test_a_change_without_the_csrf_token_or_from_another_site_is_refused(web_server: Server) -> None:
    key = new_flag(web_server)
    KILL = kill_path(key)
    browser = signed_in(web_server)
    csrf = csrf_of(browser.get(f"/flags/{key}").text)
    form = {"reason": "hostile", "confirm": "yes"}
    assert browser.post(KILL, data=form).status_code == 403
    assert browser.post(KILL, data={**form, "csrf": "forged"}).status_code == 403
    r = browser.post(KILL, data={**form, "csrf": csrf}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = browser.post(KILL, data={**form, "csrf": csrf}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    assert browser.post(KILL, content=json.dumps({**form, "csrf": csrf})).status_code == 400
    assert state(web_server, key)["enabled"] is True
    r = browser.post(KILL, data={"reason": "checkout errors", "csrf": csrf})  # no confirmation ticked
    assert r.status_code == 303 and state(web_server, key)["enabled"] is True
    r = browser.post(KILL, data={"reason": "checkout errors", "confirm": "yes", "csrf": csrf})
    assert r.status_code == 303 and state(web_server, key)["enabled"] is False
    with web_server.client() as api:
        entry = api.get("/api/v1/audit", params={"target": f"flag:{key}", "action": "flag.kill"}).json()[0]
    assert (entry["actor"], entry["reason"]) == ("admin", "checkout errors")
    told = browser.get(f"/flags/{key}").text  # who pulled it, and why, where people look
    assert "Switched off" in told and "<b>admin</b>" in told and "checkout errors" in told


def test_a_read_token_sees_everything_and_changes_nothing(web_server: Server) -> None:
    key = new_flag(web_server)
    reader = signed_in(web_server, make_token(web_server, "read", "auditor"))
    page = reader.get(f"/flags/{key}")
    assert page.status_code == 200 and key in page.text
    assert "Pull the kill switch" not in page.text and "Set rollout" not in page.text
    r = reader.post(kill_path(key), data={"reason": "try", "confirm": "yes", "csrf": csrf_of(page.text)})
    assert r.status_code == 403 and "read token" in r.text
    assert state(web_server, key)["enabled"] is True
    assert reader.get("/tokens").status_code == 403
    assert "/tokens" not in reader.get("/").text


def test_the_flag_page_lists_its_pending_scheduled_changes_in_local_time_and_cancels_them(
    web_server: Server,
) -> None:
    key = new_flag(web_server)
    with web_server.client() as api:
        change = {"rollout": 50}
        body = {
            "flag": key,
            "environment": "production",
            "at": "23:59",
            "timezone": "Asia/Tokyo",
            "change": change,
        }
        made = api.post("/api/v1/scheduled-changes", json={**body, "reason": "<b>ramp</b>"})
        assert made.status_code == 201, made.text
    browser = signed_in(web_server)
    page = browser.get(f"/flags/{key}")
    assert "23:59 Asia/Tokyo" in page.text and "rollout=50" in page.text
    assert "&lt;b&gt;ramp&lt;/b&gt;" in page.text  # a reason is text, never markup
    assert "Nothing scheduled" in browser.get(f"/flags/{key}", params={"env": "staging"}).text

    cancel = f"/scheduled-changes/{made.json()['id']}/cancel"
    reader = signed_in(web_server, make_token(web_server, "read", "auditor"))
    read_page = reader.get(f"/flags/{key}")
    assert cancel not in read_page.text
    form = {"reason": "not tonight", "confirm": "yes", "csrf": csrf_of(read_page.text)}
    assert reader.post(cancel, data=form).status_code == 403
    done = browser.post(cancel, data={**form, "csrf": csrf_of(page.text)})
    assert done.status_code == 303 and done.headers["location"] == f"/flags/{key}?env=production"
    with web_server.client() as api:
        cancelled = api.get(f"/api/v1/scheduled-changes/{made.json()['id']}").json()
    assert (cancelled["status"], cancelled["finished_by"], cancelled["outcome"]) == (
        "cancelled",
        "admin",
        "not tonight",
    )
    assert "Nothing scheduled" in browser.get(f"/flags/{key}").text


def test_the_evaluation_tester_gives_the_ofrep_answer(web_server: Server) -> None:
    key, prerequisite = new_flag(web_server, 50), new_flag(web_server, 70)
    segment = f"testers-{uuid.uuid4().hex[:8]}"
    with web_server.client() as api:
        testers = api.post(
            "/api/v1/environments/production/segments", json={"key": segment, "keys": ["user-3", "user-8"]}
        )
        assert testers.status_code == 201, testers.text
        email = {"attribute": "email", "operator": "ends_with", "values": ["@example.com"]}
        in_segment = {"operator": "in_segment", "values": [segment]}
        rules = [{"conditions": [email], "variant": "on"}, {"conditions": [in_segment], "variant": "off"}]
        changed = api.put(
            f"/api/v1/flags/{key}/environments/production",
            json={"rules": rules, "prerequisites": [{"flag": prerequisite}]},
        )
        assert changed.status_code == 200, changed.text
    sdk = make_token(web_server, "sdk", "ofrep", "production")
    browser = signed_in(web_server)
    ofrep = httpx.Client(
        base_url=web_server.url, headers={"Authorization": f"Bearer {sdk}"}, timeout=PATIENCE_S
    )
    cases = [(f"user-{i}", "") for i in range(12)] + [("user-1", '{"email": "dana@example.com"}'), ("", "")]
    for user, attributes in cases:
        page = browser.get(
            f"/flags/{key}", params={"env": "production", "targeting_key": user, "attributes": attributes}
        )
        answer_block = re.search(r"<pre><code>(\{\s*&#34;key.*?)</code></pre>", page.text, re.S)
        assert answer_block, page.text
        shown = json.loads(html.unescape(answer_block.group(1)))
        context = {**json.loads(attributes or "{}"), **({"targetingKey": user} if user else {})}
        answer = ofrep.post(f"/ofrep/v1/evaluate/flags/{key}", json={"context": context})
        assert shown == answer.json(), (user, attributes)
    assert f"segment in {segment} → off" in page.text  # the rule as the flag page shows it
    listed = browser.get("/segments", params={"env": "production"}).text
    row = re.search(rf"<code>{segment}</code>.*?</tr>", listed, re.S)
    assert row and "<td>2</td>" in row.group(0) and f'href="/flags/{key}?env=production"' in row.group(0)
    assert segment not in browser.get("/segments", params={"env": "staging"}).text
    bad = browser.get(f"/flags/{key}", params={"targeting_key": "u", "attributes": "[1"})
    assert bad.status_code == 200 and "attributes are a JSON object" in bad.text


def test_pages_carry_a_strict_policy_and_name_no_other_host(web_server: Server) -> None:
    browser = signed_in(web_server)
    for path in [
        "/",
        "/rollouts",
        "/flags",
        "/flags/workstation",
        "/segments",
        "/alerts",
        "/deliveries",
        "/reports",
        "/audit",
        "/tokens",
    ]:
        r = browser.get(path)
        assert r.status_code == 200, path
        policy = r.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
        assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"
        assert not re.search(r'(src|href|action)="(https?:)?//', r.text), path
        assert "<script>" not in r.text and " style=" not in r.text, path
    for asset in ["/static/app.js", "/static/app.css"]:
        body = browser.get(asset).text
        assert not re.search(r"https?://|@import|url\(", body), asset


def test_the_live_stream_follows_changes_on_the_session(web_server: Server) -> None:
    browser = signed_in(web_server)
    with browser.stream("GET", "/live", timeout=PATIENCE_S) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:") and next(lines) == "event: hello"
        new_flag(web_server, 10)
        assert "event: change" in lines


def test_every_rollout_command_from_the_dashboard_is_audited_as_the_token(web_server: Server) -> None:
    key = new_flag(web_server, 0)
    plan = {
        "name": "commands",
        "flag": key,
        "environment": "production",
        "stages": [
            {"name": "One", "percentage": 10, "min_duration": "1h"},
            {"name": "Two", "percentage": 50, "min_duration": "1h", "approval": "required"},
        ],
    }
    with web_server.client() as api:
        rollout_id = api.post("/api/v1/rollouts", json={"plan": plan}).json()["id"]
    browser = signed_in(web_server, make_token(web_server, "write", "release-manager"))
    page = browser.get(f"/rollouts/{rollout_id}")
    csrf = csrf_of(page.text)
    assert f'action="/rollouts/{rollout_id}/approve"' in page.text

    def command(action: str, reason: str) -> str:
        r = browser.post(
            f"/rollouts/{rollout_id}/{action}", data={"csrf": csrf, "reason": reason, "confirm": "yes"}
        )
        assert r.status_code == 303, r.text
        return browser.get(f"/rollouts/{rollout_id}").text

    assert "Nothing changed: say why" in command("pause", " ")
    for action, reason in [
        ("pause", "holding for the release call"),
        ("resume", "call done"),
        ("approve", "full launch approved"),
        ("advance", "numbers look fine"),
        ("rollback", "one step back to be safe"),
        ("abort", "trying again next week"),
    ]:
        assert f"{action} done as release-manager" in command(action, reason)
    assert "Nothing changed: the rollout is aborted" in command("resume", "too late")
    with web_server.client() as api:
        entries = api.get(
            "/api/v1/audit", params={"target": f"rollout:{rollout_id}", "action": "rollout."}
        ).json()
    assert [(e["action"], e["actor"], e["reason"]) for e in reversed(entries)] == [
        ("rollout.create", "admin", ""),
        ("rollout.start", "admin", ""),
        ("rollout.pause", "release-manager", "holding for the release call"),
        ("rollout.resume", "release-manager", "call done"),
        ("rollout.approve", "release-manager", "full launch approved"),
        ("rollout.advance", "release-manager", "numbers look fine"),
        ("rollout.rollback", "release-manager", "one step back to be safe"),
        ("rollout.abort", "release-manager", "trying again next week"),
    ]


def test_tokens_are_made_and_revoked_by_an_admin_the_secret_shown_once(web_server: Server) -> None:
    browser = signed_in(web_server)
    csrf = csrf_of(browser.get("/tokens").text)
    r = browser.post(
        "/tokens", data={"csrf": csrf, "name": "web frontend", "scope": "sdk", "environment": "production"}
    )
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    found = re.search(r'<code id="new-secret">(rp_[^<]+)</code>', r.text)
    assert found
    secret = found.group(1)
    ofrep = httpx.Client(
        base_url=web_server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=PATIENCE_S
    )
    assert ofrep.post("/ofrep/v1/evaluate/flags/workstation").status_code == 200
    listing = browser.get("/tokens").text
    assert secret not in listing and "web frontend" in listing
    token_id = re.search(r"<td>web frontend</td><td><code>([0-9a-f]+)</code>", listing)
    assert token_id
    r = browser.post(f"/tokens/{token_id.group(1)}/revoke", data={"csrf": csrf, "confirm": "yes"})
    assert r.status_code == 303
    assert ofrep.post("/ofrep/v1/evaluate/flags/workstation").status_code == 401
    bad = browser.post("/tokens", data={"csrf": csrf, "name": "x", "scope": "root"})
    assert bad.status_code == 303 and "unknown scope" in browser.get("/tokens").text


def test_rules_edited_on_the_flag_page_and_a_bad_edit_changes_nothing(web_server: Server) -> None:
    key = new_flag(web_server, 0)
    browser = signed_in(web_server)
    csrf = csrf_of(browser.get(f"/flags/{key}").text)
    rules_path = f"/flags/{key}/environments/production/rules"
    rules = [{"attribute": "email", "operator": "ends_with", "values": ["@example.com"], "variant": "on"}]
    form = {"csrf": csrf, "confirm": "yes", "reason": "staff first"}
    assert browser.post(rules_path, data={**form, "rules": json.dumps(rules)}).status_code == 303
    page = browser.get(f"/flags/{key}").text
    assert "email ends_with @example.com → on" in page
    browser.post(rules_path, data={**form, "rules": '[{"attribute": "email"'})
    assert "Nothing changed: rules are JSON" in browser.get(f"/flags/{key}").text
    browser.post(
        rules_path, data={**form, "rules": '[{"attribute": "email", "operator": "nope", "values": []}]'}
    )
    assert "Nothing changed" in browser.get(f"/flags/{key}").text
    assert state(web_server, key)["rules"] == [
        {
            "conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@example.com"]}],
            "variant": "on",
        }
    ]


def test_a_comment_with_markup_is_shown_as_text_on_the_rollout_page_and_in_its_report(
    web_server: Server,
) -> None:
    key = new_flag(web_server, 0)
    plan = {
        "name": "said",
        "flag": key,
        "environment": "production",
        "stages": [{"name": "Half", "percentage": 50, "min_duration": "1h"}],
    }
    evil = '</q><script>alert("pwned")</script><img src=x onerror=alert(1)> mail me: eve@example.com'
    with web_server.client() as api:
        rollout_id = api.post("/api/v1/rollouts", json={"plan": plan}).json()["id"]
        token = api.post("/api/v1/tokens", json={"scope": "ingest", "environment": "production"}).json()[
            "token"
        ]
    with web_server.client(token) as ingest:
        event = {
            "type": "feedback",
            "targeting_key": "eve",
            "flags": {key: True},
            "rating": 1,
            "comment": evil,
        }
        assert ingest.post("/api/v1/events", json={"events": [event]}).status_code == 202
    browser = signed_in(web_server, make_token(web_server, "read", "support-lead"))
    page = browser.get(f"/rollouts/{rollout_id}").text
    section = page.split('id="rollout-feedback"')[1].split("</section>")[0]
    assert "<script>" not in section and "<img" not in section and "eve@example.com" not in section
    assert "&lt;/q&gt;&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in section
    assert "e…@example.com" in section and "1 on 1-5" in section
    document = browser.get(f"/reports/{rollout_id}/daily/document")
    assert "script-src" not in document.headers["content-security-policy"]  # and default-src 'none'
    assert "<script>" not in document.text and "<img src=x" not in document.text
    assert "&lt;script&gt;alert(" in document.text and "eve@example.com" not in document.text
