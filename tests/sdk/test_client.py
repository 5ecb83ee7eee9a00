"""rampup.sdk.Client against running servers: the server's answers bit for bit, kill switches within a
second, and the faults users meet — a server killed and restarted, a start with the server down, a stream
that fails — with evaluations that keep answering and never raise."""

import json
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext

from rampup.adapters.codecs.sdk_config import encode_config
from rampup.core.flags import CompiledFlag, FlagDefinition, FlagState
from rampup.sdk import Client
from tests.sdk.conftest import FaultProxy, Rampup, Refusal, tokens
from tests.support.ports import free_port
from tests.support.servers import Server, start_server
from tests.support.waiting import wait_until

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "bucketing.json").read_text())


def users(n: int, seed: int = 7) -> list[tuple[str, dict[str, Any]]]:
    rng = random.Random(seed)
    return [
        (
            f"user-{rng.getrandbits(48):012x}",
            {
                "email": f"u{i}@{rng.choice(['example.com', 'corp.io', 'mail.net'])}",
                "plan": rng.choice(["free", "pro", "team"]),
                "app_version": f"{rng.randint(1, 3)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}",
                "seats": rng.randint(1, 500),
                # Most users belong to one of a few dozen accounts; some carry none.
                **({"account_id": f"acct-{rng.randrange(40)}"} if rng.random() < 0.8 else {}),
            },
        )
        for i in range(n)
    ]


# ------------------------------------------------------------------------------ the server's answers


def mixed_flags(rampup: Rampup, population: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """One flag of every kind that evaluation distinguishes; name → key. A segment lists every seventh user of
    `population` and holds the team plans with 100 seats or more."""
    colours = {
        "type": "string",
        "off_variant": "red",
        "variants": [
            {"name": "red", "value": "#f00"},
            {"name": "green", "value": "#0f0"},
            {"name": "blue", "value": "#00f"},
        ],
    }
    sizes = {
        "type": "number",
        "variants": [
            {"name": "small", "value": 0.5},
            {"name": "medium", "value": 2.5},
            {"name": "large", "value": 10.25},
        ],
    }
    layout = {
        "type": "object",
        "variants": [
            {"name": "classic", "value": {"columns": 1}},
            {"name": "grid", "value": {"columns": 3, "dense": True}},
        ],
    }
    flags = {
        "split": rampup.new_flag(enabled=True, rollout=25),
        "rules": rampup.new_flag(
            enabled=True,
            rollout=33.33,
            rules=[
                {
                    "conditions": [
                        {"attribute": "email", "operator": "ends_with", "values": ["@example.com"]}
                    ],
                    "variant": "on",
                },
                {
                    "conditions": [
                        {"attribute": "plan", "operator": "in", "values": ["free"]},
                        {"attribute": "seats", "operator": "lt", "values": [10]},
                    ],
                    "variant": "off",
                },
            ],
        ),
        "salted": rampup.new_flag(enabled=True, rollout=12.34, salt="Ünïcode-salt"),
        "off": rampup.new_flag(enabled=False, rollout=100),
        "none": rampup.new_flag(enabled=True, rollout=0),
        "string": rampup.new_flag(
            definition=colours,
            enabled=True,
            rollout=60,
            weights={"green": 70, "blue": 30},
            rules=[
                {
                    "conditions": [
                        {"attribute": "app_version", "operator": "semver_gte", "values": ["3.5.0"]}
                    ],
                    "variant": "blue",
                }
            ],
        ),
        "number": rampup.new_flag(definition=sizes, enabled=True, rollout=50),
        "object": rampup.new_flag(definition=layout, enabled=True, rollout=100),
        "account": rampup.new_flag(enabled=True, rollout=40, bucket_by="account_id"),
        "rule_split": rampup.new_flag(
            enabled=True,
            rollout=20,
            bucket_by="account_id",
            rules=[
                {"conditions": [{"attribute": "plan", "operator": "in", "values": ["pro"]}], "rollout": 60}
            ],
        ),
    }
    segment = rampup.new_segment(
        keys=[user for user, _ in population[::7]],
        conditions=[
            {"attribute": "plan", "operator": "in", "values": ["team"]},
            {"attribute": "seats", "operator": "gte", "values": [100]},
        ],
    )
    in_segment = {"conditions": [{"operator": "in_segment", "values": [segment]}]}
    flags["segment"] = rampup.new_flag(enabled=True, rollout=10, rules=[{**in_segment, "variant": "on"}])
    flags["segment_split"] = rampup.new_flag(
        definition=colours,
        enabled=True,
        rollout=30,
        rules=[
            {"conditions": [{"operator": "not_in_segment", "values": [segment]}], "variant": "red"},
            {**in_segment, "rollout": 50},
        ],
    )
    # A flag that needs two others on for the user: the split one and the account-sticky one.
    flags["prerequisite"] = rampup.new_flag(
        enabled=True,
        rollout=100,
        prerequisites=[flags["split"], {"flag": flags["account"], "variant": "on"}],
    )
    return flags


def test_the_same_answers_as_the_real_ofrep_client_for_thousands_of_users(
    rampup: Rampup, client: Client, ofrep_client: OpenFeatureClient
) -> None:
    population = users(3300)
    flags = mixed_flags(rampup, population)
    rampup.caught_up(client)
    resolve: dict[str, Callable[..., Any]] = {
        "split": ofrep_client.get_boolean_details,
        "rules": ofrep_client.get_boolean_details,
        "salted": ofrep_client.get_boolean_details,
        "off": ofrep_client.get_boolean_details,
        "none": ofrep_client.get_boolean_details,
        "string": ofrep_client.get_string_details,
        "number": ofrep_client.get_float_details,
        "object": ofrep_client.get_object_details,
        "account": ofrep_client.get_boolean_details,
        "rule_split": ofrep_client.get_boolean_details,
        "prerequisite": ofrep_client.get_boolean_details,
        "segment": ofrep_client.get_boolean_details,
        "segment_split": ofrep_client.get_string_details,
    }
    defaults: dict[str, Any] = {"string": "", "number": -1.0, "object": {}, "segment_split": ""}
    names = list(flags)
    compared = 0
    for i, (user, attributes) in enumerate(population[:1100]):
        # Every user meets two flags through OFREP (one request each): over 1,100 users every flag gets about 170,
        # each rule, split and variant met many times. The reasons and the split's share below count all 3,300.
        for name in (names[i % len(names)], names[(i + 3) % len(names)]):
            key = flags[name]
            remote = resolve[name](key, defaults.get(name, True), EvaluationContext(user, attributes))
            local = client.evaluate(key, user, attributes, defaults.get(name, True))
            assert remote.error_code is None, remote
            assert (
                local.value,
                local.variant,
                str(local.reason),
                {**local.metadata, "version": local.version},
            ) == (
                remote.value,
                remote.variant,
                str(remote.reason),
                remote.flag_metadata,
            ), (name, user)
            if isinstance(remote.value, bool):
                assert client.is_enabled(key, user, attributes) is remote.value
            compared += 1
    assert compared == 2200
    reasons = {client.evaluate(flags["segment_split"], u, a, "").reason for u, a in population}
    assert {"TARGETING_MATCH", "SPLIT"} <= {str(r) for r in reasons}
    share = sum(client.is_enabled(flags["split"], u) for u, _ in population) / len(population)
    assert 0.22 < share < 0.28


def test_the_published_bucketing_vectors(rampup: Rampup, client: Client) -> None:
    """Flags with the vectors' salts at each of their rollouts, and a 50/50 variant split per salt."""
    salts = sorted({case["salt"] for case in VECTORS["cases"]})
    rollouts = sorted({p for case in VECTORS["cases"] for p in case["in_rollout"]}, key=float)
    split = {
        (salt, p): rampup.new_flag(enabled=True, rollout=float(p), salt=salt)
        for salt in salts
        for p in rollouts
    }
    ab = {
        "type": "string",
        "off_variant": "control",
        "variants": [
            {"name": "control", "value": "c"},
            {"name": "a", "value": "a"},
            {"name": "b", "value": "b"},
        ],
    }
    variants = {
        salt: rampup.new_flag(definition=ab, enabled=True, rollout=100, salt=salt, weights={"a": 50, "b": 50})
        for salt in salts
    }
    rampup.caught_up(client)
    for case in VECTORS["cases"]:
        salt, user = case["salt"], case["targeting_key"]
        for p, expected in case["in_rollout"].items():
            assert client.is_enabled(split[salt, p], user) is expected, (salt, user, p)
            assert client.evaluate(split[salt, p], user).value is expected, (salt, user, p)
        expected_variant = "a" if case["variant_bucket"] < 5000 else "b"
        assert client.evaluate(variants[salt], user).variant == expected_variant, (salt, user)


def test_the_fast_path_is_the_cores_is_on(tmp_path: Path) -> None:
    """is_enabled answers boolean flags without rules itself: it must be CompiledFlag.is_on, user by user."""
    flags = {
        f"f{i}": CompiledFlag(FlagDefinition(f"f{i}"), FlagState(enabled, bp, (), salt, (), 1))
        for i, (enabled, bp, salt) in enumerate(
            (e, bp, salt)
            for e in (True, False)
            for bp in (0, 1, 2500, 3333, 9999, 10000)
            for salt in ("", "workstation", "Ünïcode-salt")
        )
    }
    bootstrap = tmp_path / "flags.json"
    bootstrap.write_bytes(encode_config("production", 1, flags))
    with Client(f"http://127.0.0.1:{free_port()}", "rp_none", bootstrap=bootstrap) as client:
        for key, flag in flags.items():
            for user, _ in users(2000):
                assert client.is_enabled(key, user) is flag.is_on(user), (key, user)


def test_a_kill_switch_is_pushed_to_a_connected_client(rampup: Rampup) -> None:
    """The stream pushes every change: with polling an hour away, only the push can bring the kill switch.
    How soon it arrives (well within the promised second) is measured in bench/sdk_propagation.py."""
    key = rampup.new_flag(enabled=True, rollout=100)
    with Client(rampup.server.url, rampup.sdk_token, poll_interval=3600) as client:
        wait_until(
            lambda: client.is_enabled(key, "user-1") and client.stats().streaming,
            "client.is_enabled(key, 'user-1') and client.stats().streaming",
        )
        with rampup.api() as api:
            for _ in range(5):
                killed = api.post(f"/api/v1/flags/{key}/environments/production/kill", json={"reason": "t"})
                assert killed.status_code == 200, killed.text
                wait_until(
                    lambda: not client.is_enabled(key, "user-1"), "not client.is_enabled(key, 'user-1')"
                )
                back = api.put(f"/api/v1/flags/{key}/environments/production", json={"enabled": True})
                assert back.status_code == 200, back.text
                wait_until(lambda: client.is_enabled(key, "user-1"), "client.is_enabled(key, 'user-1')")
        assert client.stats().source == "stream"


# ------------------------------------------------------------------------------ faults


def answers(client: Client, key: str, n: int = 2000) -> list[bool]:
    return [client.is_enabled(key, f"user-{i}") for i in range(n)]


def change_while_down(database_url: str, tmp_path: Path, change: Callable[[Server], None]) -> None:
    """A change made while the client's server is down: through another instance on the same database."""
    other = start_server(database_url, tmp_path / "other.log")
    try:
        change(other)
    finally:
        other.stop()


def test_server_killed_and_restarted_under_a_running_client(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    database_url, port = make_database_url("sqlite"), free_port()
    server = server_factory(database_url, port=port)
    rampup = Rampup(server, *tokens(server))
    key = rampup.new_flag(enabled=True, rollout=50)
    with Client(server.url, rampup.sdk_token) as client:
        wait_until(lambda: client.stats().streaming, "client.stats().streaming")
        before = answers(client, key)
        assert 0.45 < sum(before) / len(before) < 0.55

        server.stop(kill=True)
        wait_until(lambda: not client.stats().streaming, "not client.stats().streaming")
        assert answers(client, key) == before, "the last good configuration keeps answering"

        def raise_to_100(other: Server) -> None:
            with other.client() as api:
                assert (
                    api.put(f"/api/v1/flags/{key}/environments/production", json={"rollout": 100}).status_code
                    == 200
                )

        change_while_down(database_url, tmp_path, raise_to_100)
        assert answers(client, key) == before
        server_factory(database_url, port=port)
        wait_until(lambda: all(answers(client, key, 200)), "all(answers(client, key, 200))")
        # The poll before each reconnect may pick the change up before the stream is back: wait for the stream.
        wait_until(lambda: client.stats().streaming, "client.stats().streaming")
        stats = client.stats()
        assert stats.connects >= 2 and stats.config_errors >= 1
        assert stats.errors == {}


def test_a_client_starts_from_its_bootstrap_file_with_the_server_down(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server], tmp_path: Path
) -> None:
    database_url, port = make_database_url("sqlite"), free_port()
    server = server_factory(database_url, port=port)
    rampup = Rampup(server, *tokens(server))
    key = rampup.new_flag(enabled=True, rollout=30)
    bootstrap = tmp_path / "flags.json"
    with Client(server.url, rampup.sdk_token, bootstrap=bootstrap) as first:
        rampup.caught_up(first)
        expected = answers(first, key)
    assert json.loads(bootstrap.read_text())["revision"] == first.stats().revision, (
        "the last good config is kept"
    )
    server.stop(kill=True)

    # A refused connection must not hold the start up at all: a start that waited for its timeout would
    # outlast the suite's own per-test timeout, and fail there.
    with Client(server.url, rampup.sdk_token, bootstrap=bootstrap, start_timeout=86_400) as client:
        assert client.ready and client.stats().source == "bootstrap"
        assert answers(client, key) == expected

        def kill(other: Server) -> None:
            with other.client() as api:
                assert (
                    api.post(f"/api/v1/flags/{key}/environments/production/kill", json={}).status_code == 200
                )

        change_while_down(database_url, tmp_path, kill)
        server_factory(database_url, port=port)
        wait_until(lambda: not any(answers(client, key, 500)), "not any(answers(client, key, 500))")
        wait_until(lambda: client.stats().streaming, "client.stats().streaming")
        assert client.stats().source in ("poll", "stream")
    assert json.loads(bootstrap.read_text())["flags"][0]["enabled"] is False


def test_a_broken_bootstrap_file_is_ignored(rampup: Rampup, tmp_path: Path) -> None:
    bootstrap = tmp_path / "flags.json"
    bootstrap.write_text('{"environment": "production", "revision": 1, "flags": [{"key": "x"')
    key = rampup.new_flag(enabled=True, rollout=100)
    with Client(rampup.server.url, rampup.sdk_token, bootstrap=bootstrap) as client:
        rampup.caught_up(client)
        assert client.is_enabled(key, "user-1")
        assert client.stats().config_errors >= 1
    assert json.loads(bootstrap.read_text())["environment"] == "production", "replaced by a good one"


def test_polls_with_etag_when_the_stream_fails(rampup: Rampup, proxy_to: Callable[[str], FaultProxy]) -> None:
    proxy = proxy_to(rampup.server.url)
    proxy.refuse["/api/v1/sdk/stream"] = Refusal(503)
    key = rampup.new_flag(enabled=True, rollout=100)
    with Client(proxy.url, rampup.sdk_token) as client:
        rampup.caught_up(client)
        assert client.is_enabled(key, "user-1") and client.stats().source == "poll"
        wait_until(
            lambda: 304 in proxy.hits.get("/api/v1/sdk/flags", []),
            "304 in proxy.hits.get('/api/v1/sdk/flags', [])",
        )
        rampup.kill(key)
        wait_until(lambda: not client.is_enabled(key, "user-1"), "not client.is_enabled(key, 'user-1')")
        assert not client.stats().streaming
    polls = proxy.hits["/api/v1/sdk/flags"]
    assert 304 in polls, "unchanged configurations are not sent again"
    assert set(proxy.hits["/api/v1/sdk/stream"]) == {503}


def test_polling_only(rampup: Rampup, proxy_to: Callable[[str], FaultProxy]) -> None:
    proxy = proxy_to(rampup.server.url)
    key = rampup.new_flag(enabled=True, rollout=100)
    with Client(proxy.url, rampup.sdk_token, stream=False, poll_interval=0.1) as client:
        rampup.caught_up(client)
        assert client.is_enabled(key, "user-1")
        rampup.kill(key)
        wait_until(lambda: not client.is_enabled(key, "user-1"), "not client.is_enabled(key, 'user-1')")
        wait_until(
            lambda: proxy.hits["/api/v1/sdk/flags"].count(304) >= 2,
            "proxy.hits['/api/v1/sdk/flags'].count(304) >= 2",
        )
    assert "/api/v1/sdk/stream" not in proxy.hits


def test_evaluation_never_raises(rampup: Rampup, client: Client) -> None:
    split = rampup.new_flag(enabled=True, rollout=50)
    ruled = rampup.new_flag(
        enabled=True,
        rollout=50,
        rules=[{"conditions": [{"attribute": "email", "operator": "ends_with", "values": ["@example.com"]}]}],
    )
    colour = rampup.new_flag(
        definition={"type": "string", "variants": [{"name": "a", "value": "x"}, {"name": "b", "value": "y"}]},
        enabled=True,
        rollout=100,
    )
    rampup.caught_up(client)
    nasty: list[Any] = [None, "", 42, 4.2, object(), b"bytes", ["list"]]
    for key in (split, ruled, colour, "no-such-flag"):
        for user in nasty:
            for attributes in (None, {}, ["not", "a", "mapping"], {"email": object()}):
                for default in (True, False):
                    on = client.is_enabled(key, user, attributes, default)  # type: ignore[arg-type]
                    assert isinstance(on, bool)
                evaluation = client.evaluate(key, user, attributes, "fallback")  # type: ignore[arg-type]
                assert evaluation.value is not None
    assert client.is_enabled("no-such-flag", "user-1", default=True) is True
    assert client.is_enabled(colour, "user-1", default=True) is True, "not a boolean flag: the default"
    assert client.is_enabled(split, "", default=True) is True, "a split needs a targeting key: the default"
    missing = client.evaluate(split, None, default="dflt")
    assert (missing.value, missing.reason, missing.error_code) == ("dflt", "ERROR", "TARGETING_KEY_MISSING")
    assert client.is_enabled(split, 42, default=True) is True, "not a string: the default"  # type: ignore[arg-type]
    errors = client.stats().errors
    assert set(errors) == {
        "FLAG_NOT_FOUND",
        "TYPE_MISMATCH",
        "TARGETING_KEY_MISSING",
        "INVALID_CONTEXT",
        "GENERAL",
    }


def test_a_client_with_no_server_and_no_bootstrap_answers_the_default() -> None:
    # A start that waited for its timeout would outlast the suite's own per-test timeout, and fail there.
    with Client(f"http://127.0.0.1:{free_port()}", "rp_nothing", start_timeout=86_400) as client:
        assert not client.ready
        assert client.is_enabled("anything", "user-1", default=True) is True
        assert client.evaluate("anything", "user-1", default=7).value == 7
        assert client.stats().errors["NOT_READY"] == 2


def test_concurrent_evaluations_while_the_rollout_rises(rampup: Rampup, client: Client) -> None:
    """Four threads evaluate while the rollout climbs 0 → 100: no errors, and no user ever loses the
    feature on the way up (a raise keeps everyone who was in)."""
    key = rampup.new_flag(enabled=True, rollout=0)
    rampup.caught_up(client)
    population = [f"user-{i}" for i in range(500)]
    stop = threading.Event()
    problems: list[str] = []

    def evaluate() -> None:
        had = dict.fromkeys(population, False)
        while not stop.is_set():
            for user in population:
                on = client.is_enabled(key, user)
                if had[user] and not on:
                    problems.append(f"{user} lost the feature")
                had[user] = on

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for t in threads:
        t.start()
    for rollout in range(10, 101, 10):  # each step reaches the client while the threads evaluate
        rampup.set_state(key, rollout=rollout)
        rampup.caught_up(client)
    wait_until(
        lambda: all(client.is_enabled(key, u) for u in population),
        "all(client.is_enabled(key, u) for u in population)",
    )
    stop.set()
    for t in threads:
        t.join()
    assert problems == []
    assert client.stats().errors == {}


def test_close_is_prompt_and_the_last_configuration_keeps_answering(rampup: Rampup) -> None:
    key = rampup.new_flag(enabled=True, rollout=100)
    client = Client(rampup.server.url, rampup.sdk_token)
    wait_until(lambda: client.stats().streaming, "client.stats().streaming")
    client.close()
    assert not client._thread.is_alive(), "close ends the stream it was reading, not only its own wait"
    assert client.is_enabled(key, "user-1")
    client.close()  # twice is fine
