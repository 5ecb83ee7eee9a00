"""Flags that fit real products, tried as a new user would: the real OFREP client and the SDK side by side."""

from typing import Any

from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext

from rampup.sdk import Client
from tests.sdk.conftest import Rampup
from tests.support.rollouts import command, create_rollout, rollout


def both(
    rampup: Rampup, client: Client, ofrep: OpenFeatureClient, key: str, user: str, attributes: dict[str, Any]
) -> tuple[bool, dict[str, Any]]:
    """The answer through OFREP, after checking the SDK gives the same one with the same metadata."""
    remote = ofrep.get_boolean_details(key, False, EvaluationContext(user, attributes))
    local = client.evaluate(key, user, attributes, False)
    assert remote.error_code is None, remote
    assert (local.value, local.variant, str(local.reason)) == (
        remote.value,
        remote.variant,
        str(remote.reason),
    )
    assert {**local.metadata, "version": local.version} == remote.flag_metadata
    assert client.is_enabled(key, user, attributes) is remote.value
    return bool(remote.value), dict(remote.flag_metadata)


def test_every_user_of_an_account_sees_the_same_answer(
    rampup: Rampup, client: Client, ofrep_client: OpenFeatureClient
) -> None:
    key = rampup.new_flag(enabled=True, rollout=50, bucket_by="account_id")
    rampup.caught_up(client)
    per_account: dict[str, set[bool]] = {}
    for a in range(30):
        for u in range(6):
            value, metadata = both(
                rampup, client, ofrep_client, key, f"a{a}-user-{u}", {"account_id": f"acct-{a}"}
            )
            assert metadata["bucketedBy"] == "account_id"
            per_account.setdefault(f"acct-{a}", set()).add(value)
    assert all(len(answers) == 1 for answers in per_account.values()), per_account
    assert {True, False} == {answer for answers in per_account.values() for answer in answers}

    # A user without an account is bucketed by the targeting key, and the answer says so.
    _, metadata = both(rampup, client, ofrep_client, key, "lone-user", {})
    assert metadata["bucketedBy"] == "targetingKey"

    # Raising the rollout keeps every account that was in.
    inside = {a for a, answers in per_account.items() if answers == {True}}
    rampup.set_state(key, rollout=80)
    rampup.caught_up(client)
    for account in inside:
        assert both(rampup, client, ofrep_client, key, "someone-new", {"account_id": account})[0] is True


def test_a_running_rollout_whose_plan_buckets_by_account_gives_each_account_one_answer(
    rampup: Rampup, client: Client, ofrep_client: OpenFeatureClient
) -> None:
    key = rampup.new_flag()  # bucketed by the targeting key until the plan says otherwise
    plan = {
        "name": f"{key}-by-account",
        "flag": key,
        "environment": rampup.environment,
        "bucket_by": "account_id",
        "stages": [{"name": "Some accounts", "percentage": 40, "min_duration": "24h"}],
        "gates": [],
    }
    with rampup.api() as api:
        rid = create_rollout(api, plan)
        assert rollout(api, rid)["state"] == "running"
        state = api.get(f"/api/v1/flags/{key}/environments/{rampup.environment}").json()
    assert (state["enabled"], state["rollout"], state["bucket_by"]) == (True, 40, "account_id")
    rampup.caught_up(client)
    per_account = {
        f"acct-{a}": {
            both(rampup, client, ofrep_client, key, f"a{a}-user-{u}", {"account_id": f"acct-{a}"})[0]
            for u in range(4)
        }
        for a in range(40)
    }
    assert all(len(answers) == 1 for answers in per_account.values()), per_account
    assert {True, False} == set().union(*per_account.values())
    with rampup.api() as api:
        command(api, rid, "abort", reason="done looking")


def test_a_fifty_percent_split_inside_a_rule(
    rampup: Rampup, client: Client, ofrep_client: OpenFeatureClient
) -> None:
    rule = {"conditions": [{"attribute": "country", "operator": "in", "values": ["DE", "AT"]}], "rollout": 50}
    key = rampup.new_flag(enabled=True, rollout=0, rules=[rule])
    with rampup.api() as api:
        shown = api.get(f"/api/v1/flags/{key}/environments/{rampup.environment}").json()
    assert shown["rules"][0]["rollout"] == 50 and "variant" not in shown["rules"][0]
    rampup.caught_up(client)
    german = [both(rampup, client, ofrep_client, key, f"user-{i}", {"country": "DE"})[0] for i in range(300)]
    assert 0.38 < sum(german) / len(german) < 0.62
    french = {both(rampup, client, ofrep_client, key, f"user-{i}", {"country": "FR"})[0] for i in range(50)}
    assert french == {False}


def test_a_prerequisite_switched_off_turns_its_dependents_off(
    rampup: Rampup, client: Client, ofrep_client: OpenFeatureClient
) -> None:
    checkout = rampup.new_flag(enabled=True, rollout=100)
    express = rampup.new_flag(enabled=True, rollout=100, prerequisites=[checkout])
    rampup.caught_up(client)
    assert both(rampup, client, ofrep_client, express, "user-1", {}) == (True, {"version": 2})
    rampup.kill(checkout)
    rampup.caught_up(client)
    for i in range(20):
        value, metadata = both(rampup, client, ofrep_client, express, f"user-{i}", {})
        assert (value, metadata["prerequisiteFailed"]) == (False, checkout)


def test_a_prerequisite_cycle_is_refused_naming_it_and_changes_nothing(rampup: Rampup) -> None:
    a = rampup.new_flag()
    b = rampup.new_flag(prerequisites=[a])
    c = rampup.new_flag(prerequisites=[{"flag": b, "variant": "on"}])
    with rampup.api() as api:
        path = f"/api/v1/flags/{a}/environments/{rampup.environment}"
        refused = api.put(path, json={"prerequisites": [c], "rollout": 50})
        assert refused.status_code == 422, refused.text
        error = refused.json()["error"]
        assert (error["message"], error["where"]) == (
            f"prerequisites would form a cycle: {a} → {c} → {b} → {a}",
            "prerequisites",
        )
        missing = api.put(path, json={"prerequisites": [{"flag": "no-such-flag"}]})
        assert missing.json()["error"]["where"] == "prerequisites[0].flag"
        state = api.get(path).json()
        assert (state["prerequisites"], state["rollout"], state["version"]) == ([], 0, 1)
        deleted = api.delete(f"/api/v1/flags/{a}")
        assert deleted.status_code == 409 and b in deleted.json()["error"]["message"]
        assert api.get(f"/api/v1/flags/{a}").status_code == 200


def test_telemetry_of_an_account_sticky_flag_counts_accounts(rampup: Rampup) -> None:
    key = rampup.new_flag(enabled=True, rollout=50, bucket_by="account_id")
    answers: dict[str, bool] = {}
    with Client(rampup.server.url, rampup.sdk_token, ingest_token=rampup.ingest_token) as sdk:
        rampup.caught_up(sdk)
        for a in range(24):
            account = f"acct-{a}"
            for u in range(5):
                user, attributes = f"{account}-user-{u}", {"account_id": account}
                answers[account] = sdk.is_enabled(key, user, attributes)
                # The SDK tags its exposures with the account; other events carry it in their tags.
                sdk.track("click", user, engagement=True, tags=attributes)
        assert sdk.flush(10)
    on = sum(answers.values())
    engagement = rampup.metric("engagement", key)["variants"]
    assert (engagement["on"]["users"], engagement["off"]["users"]) == (on, 24 - on), engagement


def test_a_segment_edited_once_changes_several_flags(
    rampup: Rampup, client: Client, ofrep_client: OpenFeatureClient
) -> None:
    testers = [f"tester-{i}" for i in range(2_000)]
    beta = rampup.new_segment(
        description="beta testers",
        keys=testers,
        conditions=[{"attribute": "email", "operator": "ends_with", "values": ["@staff.example"]}],
    )
    in_beta = [{"operator": "in_segment", "values": [beta]}]
    checkout = rampup.new_flag(enabled=True, rules=[{"conditions": in_beta, "variant": "on"}])
    search = rampup.new_flag(enabled=True, rollout=0, rules=[{"conditions": in_beta, "rollout": 100}])
    # The opposite: everyone outside the segment keeps the old page, the segment gets the rollout.
    legacy = rampup.new_flag(
        enabled=True,
        rollout=100,
        rules=[{"conditions": [{"operator": "not_in_segment", "values": [beta]}], "variant": "off"}],
    )
    flags = (checkout, search, legacy)
    rampup.caught_up(client)

    def answers(user: str, **attributes: Any) -> tuple[bool, ...]:
        return tuple(both(rampup, client, ofrep_client, key, user, attributes)[0] for key in flags)

    assert answers("tester-7") == answers("dana", email="dana@staff.example") == (True, True, True)
    assert answers("newcomer-1") == (False, False, False)
    assert answers("tester-1999") == (True, True, True)

    with rampup.api() as api:
        edited = api.patch(
            f"/api/v1/environments/{rampup.environment}/segments/{beta}",
            json={"add_keys": ["newcomer-1"], "remove_keys": ["tester-1999"], "reason": "swap one tester"},
        )
        assert edited.status_code == 200, edited.text
        assert (edited.json()["key_count"], edited.json()["used_by"]) == (2_000, sorted(flags))
    rampup.caught_up(client)  # the SDK got the edit pushed over its stream
    assert answers("newcomer-1") == (True, True, True)
    assert answers("tester-1999") == (False, False, False)
    assert answers("tester-7") == (True, True, True)

    with rampup.api() as api:
        trail = api.get("/api/v1/audit", params={"action": "flag.segment", "limit": 3}).json()
        assert {(e["target"], e["actor"], e["reason"]) for e in trail} == {
            (f"flag:{key}", "admin", "swap one tester") for key in flags
        }
        in_use = api.delete(f"/api/v1/environments/{rampup.environment}/segments/{beta}")
        assert in_use.status_code == 409 and all(key in in_use.json()["error"]["message"] for key in flags)
        unknown = api.put(
            f"/api/v1/flags/{checkout}/environments/{rampup.environment}",
            json={"rules": [{"conditions": [{"operator": "in_segment", "values": ["no-such-segment"]}]}]},
        )
        assert unknown.status_code == 422
        assert unknown.json()["error"]["where"] == "rules[0].conditions[0].values[0]"
