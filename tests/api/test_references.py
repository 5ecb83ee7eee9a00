"""PUT /api/v1/flags/{key}/references: where the code uses a flag, as `rampup refs --push` reports it, shown in
the flag's answer and on its dashboard page; and what an attacker would try against it. Each test on a flag of
its own, so the module shares a server per backend."""

from typing import Any

import httpx
import pytest

from tests.support.api import new_flag, new_token
from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S
from tests.web.signin import signed_in

REF = {
    "file": "ledger/views.py",
    "line": 39,
    "kind": "wrapper-use",
    "detail": "workstation_enabled",
    "scope": "categories",
    "code": "if not workstation_enabled(_user()):",
}


@pytest.fixture
def server(shared_server: Server) -> Server:
    return shared_server


def references(api: httpx.Client, key: str) -> dict[str, Any]:
    return dict(api.get(f"/api/v1/flags/{key}").json()["references"])


def test_pushed_references_are_shown_in_the_answer_and_on_the_dashboard(server: Server) -> None:
    api = server.client()
    key = new_flag(api)
    writer = server.client(new_token(api, "write", None))
    pushed = writer.put(f"/api/v1/flags/{key}/references", json={"references": [REF], "root": "/src/ledger"})
    assert pushed.status_code == 200, pushed.text
    shown = references(api, key)
    assert shown["count"] == 1 and shown["items"] == [REF] and shown["scanned_at"] is not None
    audit = api.get("/api/v1/audit", params={"target": f"flag:{key}", "action": "flag.references"}).json()
    assert audit[0]["after"] == {"references": 1, "root": "/src/ledger"}

    dashboard = signed_in(server)
    page = dashboard.get(f"/flags/{key}")
    assert page.status_code == 200
    assert "ledger/views.py:39" in page.text and "Used in 1 place in code" in page.text
    assert "A <b>release</b> flag (expected to live 40 days)" in page.text
    listing = dashboard.get("/flags", params={"q": key})
    assert listing.status_code == 200 and "<td>release</td>" in listing.text

    assert writer.put(f"/api/v1/flags/{key}/references", json={"references": []}).status_code == 200
    emptied = references(api, key)
    assert emptied["count"] == 0 and emptied["scanned_at"] is not None


def test_a_read_token_cannot_push_and_bad_payloads_store_nothing(server: Server) -> None:
    api = server.client()
    key = new_flag(api)
    assert api.put(f"/api/v1/flags/{key}/references", json={"references": [REF]}).status_code == 200
    before = references(api, key)

    reader = server.client(new_token(api, "read", None))
    refused = reader.put(f"/api/v1/flags/{key}/references", json={"references": []})
    assert refused.status_code == 403
    assert (
        httpx.put(
            f"{server.url}/api/v1/flags/{key}/references", json={"references": []}, timeout=PATIENCE_S
        ).status_code
        == 401
    )
    sdk = server.client(new_token(api, "sdk"))
    assert sdk.put(f"/api/v1/flags/{key}/references", json={"references": []}).status_code == 403

    url = f"/api/v1/flags/{key}/references"
    huge = (
        b'{"references": [' + b",".join([b'{"file": "a.py", "line": 1, "kind": "literal"}'] * 60_000) + b"]}"
    )
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"content": huge}, 413, None),
        ({"content": b"{not json"}, 400, None),
        ({"json": {"references": "everywhere"}}, 422, "references"),
        ({"json": {"references": [{**REF, "kind": "rumour"}]}}, 422, "references[0].kind"),
        ({"json": {"references": [{**REF, "line": -1}]}}, 422, "references[0].line"),
        ({"json": {"references": [REF, {**REF, "code": "x" * 5000}]}}, 422, "references[1].code"),
        ({"json": {"references": [REF], "owner": "mallory"}}, 422, "references"),
        ({"json": {"references": [{**REF, "file": "a\x00b"}]}}, 422, "references[0].file"),
        ({"json": {"references": [REF] * 5001}}, 413, "references"),
    ]
    for request, status, where in cases:
        r = api.put(url, **request)
        assert r.status_code == status, (status, r.text[:300])
        error = r.json()["error"]
        assert where is None or error.get("where") == where, (where, error)
    assert api.put("/api/v1/flags/nope/references", json={"references": []}).status_code == 404
    assert references(api, key) == before

    # The other new routes: reading needs a read token, changing a write token; an sdk token does neither.
    for method, path, body in (
        ("GET", "/api/v1/lifecycle", None),
        ("GET", f"/api/v1/flags/{key}/evaluations", None),
        ("POST", f"/api/v1/flags/{key}/archive", {"force": True}),
        ("DELETE", f"/api/v1/flags/{key}/archive", None),
        ("PATCH", f"/api/v1/flags/{key}", {"kind": "permission"}),
    ):
        assert (
            httpx.request(method, f"{server.url}{path}", json=body, timeout=PATIENCE_S).status_code == 401
        ), path
        assert sdk.request(method, path, json=body).status_code == 403, path
        if method != "GET":
            assert reader.request(method, path, json=body).status_code == 403, path
    flag = api.get(f"/api/v1/flags/{key}").json()
    assert (flag["kind"], flag["archived_at"]) == ("release", None)
