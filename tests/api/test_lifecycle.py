"""A flag's life against a real server on a manual clock (the module's one per backend, each test on flags and a
channel of its own): evaluations counted, stale after 30 days without one, kill switches never stale, each change
of status told once to the flag's channels."""

import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx
from openfeature import api as openfeature
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from rampup.sdk import Client
from tests.support.api import new_flag, new_token
from tests.support.cli import rampup_at
from tests.support.receivers import Receiver
from tests.support.rollouts import at, create_rollout, drive
from tests.support.servers import Server
from tests.support.waiting import PATIENCE_S, wait_until

SECRET = "lifecycle-secret"


def flag(api: httpx.Client, key: str, kind: str, notify: list[str]) -> None:
    assert api.post("/api/v1/flags", json={"key": key, "kind": kind, "notify": notify}).status_code == 201
    put = api.put(f"/api/v1/flags/{key}/environments/production", json={"enabled": True, "rollout": 100})
    assert put.status_code == 200, put.text


def life(api: httpx.Client, key: str) -> dict[str, Any]:
    lives = api.get("/api/v1/lifecycle").json()
    return next(f for f in lives if f["flag"] == key)


def ofrep(server: Server, sdk: str, key: str) -> dict[str, Any]:
    r = httpx.post(
        f"{server.url}/ofrep/v1/evaluate/flags/{key}",
        json={"context": {"targetingKey": "user-1"}},
        headers={"Authorization": f"Bearer {sdk}"},
        timeout=PATIENCE_S,
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def flag_notifications(receiver: Receiver) -> list[dict[str, Any]]:
    return [b for b in receiver.bodies() if str(b.get("type", "")).startswith("flag.")]


def all_delivered(api: httpx.Client, channel: str) -> bool:
    deliveries = api.get("/api/v1/notifications").json()
    return all(d["status"] == "delivered" for d in deliveries if d["channel"] == channel)


def test_unused_flags_go_stale_after_30_days_kill_switches_never_and_the_channel_hears_once(
    shared_manual_server: Server,
) -> None:
    server = shared_manual_server
    api = server.client()
    with Receiver(SECRET) as receiver:
        channel = {"name": "team", "type": "webhook", "url": receiver.url(), "secret": SECRET}
        assert api.post("/api/v1/channels", json=channel).status_code == 201
        flag(api, "checkout", "experiment", [])
        made = rampup_at(server, "flag", "update", "checkout", "--kind", "release", "--notify", "team")
        assert made.returncode == 0 and "release, notifies team" in made.stdout, made.stderr
        made = rampup_at(
            server, "flag", "create", "payments-off", "--kind", "kill-switch", "--notify", "team"
        )
        assert made.returncode == 0 and "kill-switch" in made.stdout, made.stderr
        put = api.put(
            "/api/v1/flags/payments-off/environments/production", json={"enabled": True, "rollout": 100}
        )
        assert put.status_code == 200
        sdk, ingest = new_token(api, "sdk"), new_token(api, "ingest")

        for _ in range(3):
            assert ofrep(server, sdk, "checkout")["value"] is True
        ofrep(server, sdk, "payments-off")
        exposure = {"type": "exposure", "targeting_key": "u-2", "flag": "checkout", "variant": "on"}
        events = httpx.post(
            f"{server.url}/api/v1/events",
            json={"events": [exposure]},
            headers={"Authorization": f"Bearer {ingest}"},
            timeout=PATIENCE_S,
        )
        assert events.status_code == 202, events.text
        server.advance("1s")

        counts = api.get("/api/v1/flags/checkout/evaluations").json()["environments"]["production"]
        assert counts["total"] == 4  # three OFREP evaluations and one exposure
        assert counts["days"][-1]["count"] == 4 and counts["last_evaluated_at"] is not None
        assert life(api, "checkout")["status"] == "active"

        server.advance("29d")
        assert life(api, "checkout")["status"] == "active"
        server.advance("2d")
        stale = life(api, "checkout")
        assert (stale["status"], stale["reasons"]) == ("stale", ["not_evaluated"])
        assert "not evaluated for 31 days" in stale["reason"]
        kill_switch = life(api, "payments-off")
        assert (kill_switch["status"], kill_switch["reasons"]) == ("active", ["permanent"])
        listed = {f["key"]: f for f in api.get("/api/v1/flags", params={"status": "stale"}).json()}
        assert "checkout" in listed and "payments-off" not in listed
        assert listed["checkout"]["status"] == "stale"

        wait_until(lambda: flag_notifications(receiver), "the stale flag announced to its channel")
        server.advance("1h")  # another pass: nothing changed, nothing more to say
        wait_until(lambda: all_delivered(api, "team"), "every queued notification delivered")
        (told,) = flag_notifications(receiver)
        assert told["type"] == "flag.stale" and told["details"]["flag"] == "checkout"
        assert "not evaluated for 31 days" in told["text"]

        shown = rampup_at(server, "flag", "stale")
        assert shown.returncode == 0, shown.stderr
        assert "checkout" in shown.stdout and "not evaluated for 31 days" in shown.stdout
        assert "payments-off" not in shown.stdout
    assert api.get("/api/v1/lifecycle", params={"status": "forever"}).status_code == 422


LEDGER = Path(__file__).resolve().parents[1] / "fixtures" / "codebases" / "ledger"


def ofrep_provider(server: Server, sdk: str) -> OpenFeatureClient:
    domain = f"lifecycle-{uuid.uuid4().hex[:8]}"
    provider = OFREPProvider(server.url, headers_factory=lambda: {"Authorization": f"Bearer {sdk}"})
    openfeature.set_provider_and_wait(provider, domain=domain)
    return openfeature.get_client(domain)


def completing_plan(flag: str) -> dict[str, Any]:
    return {
        "name": f"{flag}-to-everyone",
        "flag": flag,
        "environment": "production",
        "stages": [
            {"name": "Half", "percentage": 50, "min_duration": "1s"},
            {"name": "Everyone", "percentage": 100, "min_duration": "1s"},
        ],
        "gates": [],
        "notify": ["rollout-channel"],
    }


def test_the_whole_life_of_a_flag_from_rollout_to_archive(
    shared_manual_server: Server, tmp_path: Path
) -> None:
    server = shared_manual_server
    api = server.client()
    key = "workstation"  # the example flag every fresh server has; the ledger fixture app uses it
    with Receiver(SECRET) as receiver:
        channel = {"name": "rollout-channel", "type": "webhook", "url": receiver.url(), "secret": SECRET}
        assert api.post("/api/v1/channels", json=channel).status_code == 201
        sdk, ingest, writer = new_token(api, "sdk"), new_token(api, "ingest"), new_token(api, "write", None)
        # After another test's months on this server the example flag is stale, and would tell the rollout's
        # channel that it is active again: evaluated first, it is announced active before it has a channel (the
        # announcements run once a minute).
        ofrep(server, sdk, key)
        server.advance("1m")

        # The rollout completes; three days later, with no rollback, the flag is ready for cleanup.
        rid = create_rollout(api, completing_plan(key))
        drive(server, api, rid, at("completed"), what="the rollout to complete")
        ofrep(server, sdk, key)
        server.advance("2d")
        assert life(api, key)["status"] == "active"
        server.advance("1d")
        ready = life(api, key)
        assert (ready["status"], ready["reasons"]) == ("ready_for_cleanup", ["rollout_completed"])
        assert ready["channels"] == ["rollout-channel"]
        wait_until(lambda: flag_notifications(receiver), "ready for cleanup announced")
        server.advance("1h")
        wait_until(lambda: all_delivered(api, "rollout-channel"), "every queued notification delivered")
        (told,) = flag_notifications(receiver)
        assert told["type"] == "flag.ready_for_cleanup" and told["details"]["flag"] == key

        # Where the code uses it: pushed, shown; archiving is refused while it is used.
        app = tmp_path / "ledger"
        shutil.copytree(LEDGER, app)
        pushed = rampup_at(server, "refs", str(app), "--flag", key, "--push", token=writer)
        assert pushed.returncode == 0, pushed.stderr
        references = api.get(f"/api/v1/flags/{key}").json()["references"]
        assert references["count"] >= 10 and references["scanned_at"] is not None
        assert {"ledger/views.py", "ledger/feature_flags.py"} <= {r["file"] for r in references["items"]}
        shown = rampup_at(server, "flag", "show", key)
        assert f"{references['count']} code references (scanned" in shown.stdout, shown.stdout + shown.stderr
        refused = rampup_at(server, "flag", "archive", key, token=writer)
        assert refused.returncode == 1 and "still used in" in refused.stderr, refused.stderr
        assert api.get(f"/api/v1/flags/{key}").json()["archived_at"] is None

        # The code loses the flag, the scan says so, and the archive goes through.
        cleaned = rampup_at(server, "cleanup", str(app), "--flag", key, "--keep", "on", "--write")
        assert cleaned.returncode == 0, cleaned.stderr
        # What cleanup leaves to a person: the test setup's own environment variable.
        conftest = app / "tests" / "conftest.py"
        conftest.write_text(
            conftest.read_text().replace(
                'os.environ.setdefault("NEXT_PUBLIC_WORKSTATION_ENABLED", "true")', ""
            )
        )
        assert rampup_at(server, "refs", str(app), "--flag", key, "--push", token=writer).returncode == 0
        archived = rampup_at(server, "flag", "archive", key, token=writer)
        assert archived.returncode == 0, archived.stderr
        before = api.get(f"/api/v1/flags/{key}/evaluations").json()["environments"]["production"]["total"]

        # Forgotten callers still get the final value, with reason ARCHIVED, and are counted.
        answer = ofrep(server, sdk, key)
        assert (answer["value"], answer["reason"], answer["variant"]) == (True, "ARCHIVED", "on")
        with Client(server.url, sdk, ingest_token=ingest) as client:
            wait_until(
                lambda: client.evaluate(key, "user-7").reason == "ARCHIVED", "the SDK to see the archive"
            )
            sdk_answer = client.evaluate(key, "user-8")
            assert (sdk_answer.value, sdk_answer.error_code) == (True, None)
            assert client.is_enabled(key, "user-9") is True
        # openfeature-provider-ofrep knows only OpenFeature's own reasons: it turns ARCHIVED into an error and
        # serves the caller's default (docs/cleanup.md says so). The server counted the call all the same.
        details = ofrep_provider(server, sdk).get_boolean_details(key, False, EvaluationContext("user-10"))
        assert (details.value, details.reason, details.error_code) == (False, Reason.ERROR, ErrorCode.GENERAL)
        assert "ARCHIVED" in (details.error_message or "")
        server.advance("1s")
        after = api.get(f"/api/v1/flags/{key}/evaluations").json()["environments"]["production"]["total"]
        assert after >= before + 5, (
            before,
            after,
        )  # OFREP's two, and the SDK's three exposures in its summary
        listed = rampup_at(server, "flag", "stale")
        assert listed.returncode == 0 and key in listed.stdout and "archived" in listed.stdout, listed.stdout
        assert (
            api.put(f"/api/v1/flags/{key}/environments/production", json={"rollout": 10}).status_code == 409
        )

        # CI: code that still uses the archived flag fails the check; the cleaned code passes it.
        untouched = tmp_path / "untouched"
        shutil.copytree(LEDGER, untouched)
        failing = rampup_at(server, "refs", str(untouched), "--check", token=new_token(api, "read", None))
        assert failing.returncode == 1, failing.stdout + failing.stderr
        assert f"archived flags still used: {key}" in failing.stderr
        assert rampup_at(server, "refs", str(app), "--check").returncode == 0


def test_archive_is_refused_without_a_scan_or_while_users_are_split_and_can_be_undone(
    shared_manual_server: Server,
) -> None:
    server = shared_manual_server
    api = server.client()
    key = new_flag(api, rollout=25)
    url = f"/api/v1/flags/{key}/archive"
    unscanned = api.post(url, json={})
    assert unscanned.status_code == 409 and "rampup refs PATH --push" in unscanned.json()["error"]["message"]
    split = api.post(url, json={"force": True})
    assert split.status_code == 409 and split.json()["error"]["where"] == "production"
    assert api.get(f"/api/v1/flags/{key}").json()["archived_at"] is None

    assert api.put(f"/api/v1/flags/{key}/environments/production", json={"rollout": 0}).status_code == 200
    assert api.put(f"/api/v1/flags/{key}/references", json={"references": []}).status_code == 200
    reader = server.client(new_token(api, "read", None))
    assert reader.post(url, json={}).status_code == 403
    archived = api.post(url, json={"reason": "done"})
    assert archived.status_code == 200 and archived.json()["archived_at"] is not None
    assert api.post(url, json={}).status_code == 409
    sdk = new_token(api, "sdk")
    assert (ofrep(server, sdk, key)["value"], ofrep(server, sdk, key)["reason"]) == (False, "ARCHIVED")
    assert api.post(f"/api/v1/flags/{key}/environments/production/kill", json={}).status_code == 409

    restored = api.delete(url)
    assert restored.status_code == 200 and restored.json()["archived_at"] is None
    assert ofrep(server, sdk, key)["reason"] == "STATIC"
    assert api.delete(url).status_code == 409
    actions = [a["action"] for a in api.get("/api/v1/audit", params={"target": f"flag:{key}"}).json()]
    assert actions[:2] == ["flag.restore", "flag.archive"]
