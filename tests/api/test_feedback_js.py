"""The real Sentry JavaScript SDK (@sentry/node from the npm registry, run by Node) sends user feedback with
`captureFeedback` to a Rampup DSN: read back per variant, attributed through the user, the flag tag, or the
error the feedback names.

`npm ci` in tests/js installs the SDK (CI does it in .ci/run; the fixture does it when it is missing)."""

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rampup.core.bucketing import in_rollout
from tests.support.api import new_flag, new_token, variants_of
from tests.support.servers import Server, start_server
from tests.support.waiting import PATIENCE_S

JS = Path(__file__).parent.parent / "js"
PRODUCTION_ID = 2


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node and npm are needed on CI for the JavaScript SDK tests")
        pytest.skip("node and npm are not installed")
    if not (JS / "node_modules" / "@sentry" / "node").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True, timeout=600
        )
    return node


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("feedback-js")
    s = start_server(f"sqlite:///{tmp / 'rampup.db'}", tmp / "server.log")
    yield s
    s.stop()


SDK_LOGS: list[str] = []  # the SDK's own log of each run (SENTRY_DEBUG), to say why an event went missing


def send(node: str, dsn: str, steps: list[dict[str, Any]]) -> list[str]:
    done = subprocess.run(
        [node, str(JS / "send_feedback.js"), json.dumps({"dsn": dsn, "steps": steps})],
        capture_output=True,
        text=True,
        timeout=PATIENCE_S,
        cwd=JS,
        env={**os.environ, "SENTRY_DEBUG": "1"},
    )
    assert done.returncode == 0, done.stderr
    SDK_LOGS.append(done.stdout + done.stderr)
    return [line for line in done.stdout.splitlines() if re.fullmatch(r"[0-9a-f]{32}", line)]


def test_capture_feedback_from_sentry_node_is_read_back_per_variant(node: str, server: Server) -> None:
    with server.client() as api:
        flag = new_flag(api, rollout=50)
        key = new_token(api)
        dsn = f"http://{key}@{server.url.removeprefix('http://')}/{PRODUCTION_ID}"
        assert re.fullmatch(r"rp_\w+", key), "the JavaScript SDK takes only word characters in a DSN's key"
        users = [f"js-{uuid.uuid4().hex[:6]}-{i}" for i in range(12)]
        treated = [u for u in users if in_rollout(flag, u, 50)]
        control = [u for u in users if not in_rollout(flag, u, 50)]
        assert treated and control
        steps: list[dict[str, Any]] = [
            {"user": u, "tags": {"rating": 2}, "message": f"slower for {u} <img src=x onerror=alert(1)>"}
            for u in treated
        ]
        steps += [{"user": u, "tags": {"rating": 5}, "message": "love it"} for u in control]
        steps += [  # no user: the flag tag (<flag>_enabled) says which variant
            {
                "tags": {"rating": "down", "rating_scale": "thumbs", f"{flag}_enabled": "true"},
                "message": "tagged",
            }
        ]
        (crash,) = send(node, dsn, [{"user": treated[0], "exception": "the editor crashed"}])
        # Later, the widget's report names the crash and has no user of its own.
        steps += [{"message": "it crashed and lost my work", "associated_event_id": crash}]
        ids = send(node, dsn, steps)
        assert len(ids) == len(steps) and all(len(i) == 32 for i in ids)

        satisfaction = variants_of(api, "satisfaction", flag=flag)
        stored = api.get("/api/v1/feedback", params={"environment": "production", "limit": 100}).text
        why = f"stored: {stored}\nSDK: {SDK_LOGS[-1][-3000:]}\nserver: {server.output()[-2000:]}"
        assert satisfaction["on"]["count"] == len(treated) + 1, why
        assert satisfaction["on"]["value"] == pytest.approx((2 * len(treated) + 1) / (len(treated) + 1))
        assert (satisfaction["off"]["count"], satisfaction["off"]["value"]) == (len(control), 5.0)
        assert variants_of(api, "feedback", flag=flag)["on"]["count"] == len(treated) + 2
        assert variants_of(api, "errors", flag=flag)["on"]["count"] == 1

        page = api.get(
            "/api/v1/feedback",
            params={"environment": "production", "flag": flag, "variant": "on", "limit": 100},
        )
        on = page.json()["feedback"]
        # The SDK sends the last two in one flush, so their order in the newest-first page is not fixed.
        (named,) = [e for e in on if e["comment"] == "it crashed and lost my work"]
        assert (named["targeting_key"], named["source"]) == (treated[0], "sentry")
        assert {e["comment"] for e in on} >= {f"slower for {u} <img src=x onerror=alert(1)>" for u in treated}
        assert "ada@example.com" not in page.text and "Ada" not in page.text


def test_a_dsn_with_a_wrong_key_loses_the_feedback_and_stores_nothing(node: str, server: Server) -> None:
    with server.client() as api:
        before = variants_of(api, "feedback")["all"]["count"]
        dsn = f"http://not-a-key@{server.url.removeprefix('http://')}/{PRODUCTION_ID}"
        send(node, dsn, [{"user": "someone", "tags": {"rating": 1}, "message": "nobody hears this"}])
        assert variants_of(api, "feedback")["all"]["count"] == before
