"""Evaluation: reasons, rules, rollouts and multivariate splits, as a user of OpenFeature would read them."""

from collections import Counter
from typing import Any

import pytest

from rampup.adapters.codecs.sdk_config import decode_config, encode_config
from rampup.core.flags import (
    CompiledFlag,
    ErrorCode,
    FlagDefinition,
    FlagState,
    Prerequisite,
    Reason,
    check_prerequisites,
    compile_flags,
    final_variant,
    parse_bucket_by,
    parse_prerequisites,
    parse_rollout,
    parse_weights,
)
from rampup.core.targeting import EvaluationContext, Rule
from rampup.errors import InvalidInput

BOOL = FlagDefinition.parse("workstation")
COLORS = FlagDefinition.parse(
    "button-color",
    "string",
    "",
    [
        {"name": "control", "value": "grey"},
        {"name": "blue", "value": "blue"},
        {"name": "green", "value": "green"},
    ],
)


def compiled(definition: FlagDefinition = BOOL, **state: object) -> CompiledFlag:
    return CompiledFlag(definition, FlagState(salt=definition.key, version=3, **state))  # type: ignore[arg-type]


def rule(text_variant: str = "on", **condition: object) -> Rule:
    return Rule.parse(
        {**condition, "variant": text_variant}, "rules[0]", BOOL.variant_names | COLORS.variant_names
    )


def user(key: str | None = "user-1", **attributes: object) -> EvaluationContext:
    return EvaluationContext(key, attributes)


@pytest.mark.parametrize(
    ("state", "ctx", "value", "variant", "reason"),
    [
        ({"enabled": False, "rollout_bp": 10_000}, user(), False, "off", Reason.DISABLED),
        ({"enabled": True, "rollout_bp": 0}, user(), False, "off", Reason.STATIC),
        ({"enabled": True, "rollout_bp": 10_000}, user(), True, "on", Reason.STATIC),
        ({"enabled": True, "rollout_bp": 10_000}, user(None), True, "on", Reason.STATIC),
        ({"enabled": True, "rollout_bp": 0}, user(None), False, "off", Reason.STATIC),
    ],
)
def test_static_and_disabled_flags_need_no_targeting_key(
    state: dict[str, Any], ctx: EvaluationContext, value: bool, variant: str, reason: Reason
) -> None:
    res = compiled(**state).evaluate(ctx)
    assert (res.value, res.variant, res.reason, res.error_code, res.version) == (
        value,
        variant,
        reason,
        None,
        3,
    )


def test_a_partial_rollout_without_targeting_key_is_an_error_with_no_value() -> None:
    res = compiled(enabled=True, rollout_bp=2500).evaluate(user(None))
    assert (
        res.reason is Reason.ERROR and res.error_code is ErrorCode.TARGETING_KEY_MISSING and res.value is None
    )


def test_a_partial_rollout_splits_users_and_says_so() -> None:
    flag = compiled(enabled=True, rollout_bp=2500)
    results = [flag.evaluate(user(f"user-{i}")) for i in range(20_000)]
    assert {r.reason for r in results} == {Reason.SPLIT}
    assert 0.24 <= sum(r.value for r in results) / len(results) <= 0.26


def test_first_matching_rule_wins_over_the_rollout() -> None:
    flag = compiled(
        enabled=True,
        rollout_bp=0,
        rules=(rule(attribute="email", operator="ends_with", values=["@example.com"]),),
    )
    staff = flag.evaluate(user("u1", email="dana@example.com"))
    customer = flag.evaluate(user("u2", email="pat@customer.org"))
    assert (staff.value, staff.reason) == (True, Reason.TARGETING_MATCH)
    assert (customer.value, customer.reason) == (False, Reason.DEFAULT)


def test_kill_switch_beats_rules() -> None:
    flag = compiled(
        enabled=False, rollout_bp=10_000, rules=(rule(attribute="user_id", operator="in", values=["u1"]),)
    )
    assert flag.evaluate(user("u1")).reason is Reason.DISABLED


@pytest.mark.parametrize(
    ("condition", "attributes", "matches"),
    [
        ({"attribute": "user_id", "operator": "in", "values": ["u1", "u2"]}, {}, True),
        ({"attribute": "user_id", "operator": "not_in", "values": ["u1"]}, {}, False),
        ({"attribute": "plan", "operator": "equals", "values": ["pro"]}, {"plan": "pro"}, True),
        ({"attribute": "plan", "operator": "not_equals", "values": ["pro"]}, {"plan": "free"}, True),
        ({"attribute": "plan", "operator": "equals", "values": ["pro"]}, {}, False),
        ({"attribute": "email", "operator": "starts_with", "values": ["dana"]}, {"email": "dana@x.io"}, True),
        ({"attribute": "email", "operator": "contains", "values": ["@x."]}, {"email": "dana@x.io"}, True),
        ({"attribute": "age", "operator": "gte", "values": [18]}, {"age": 18}, True),
        ({"attribute": "age", "operator": "gt", "values": [18]}, {"age": "21"}, True),
        ({"attribute": "age", "operator": "lt", "values": [18]}, {"age": "twelve"}, False),
        ({"attribute": "age", "operator": "lte", "values": ["17.5"]}, {"age": 17.5}, True),
        ({"attribute": "app", "operator": "semver_gte", "values": ["2.1.0"]}, {"app": "2.10.0"}, True),
        ({"attribute": "app", "operator": "semver_lt", "values": ["2.1.0"]}, {"app": "2.1.0-rc.1"}, True),
        (
            {"attribute": "app", "operator": "semver_gt", "values": ["2.1.0-rc.2"]},
            {"app": "2.1.0-rc.10"},
            True,
        ),
        ({"attribute": "app", "operator": "semver_gt", "values": ["2.1.0-alpha"]}, {"app": "2.1.0-1"}, False),
        ({"attribute": "app", "operator": "semver_eq", "values": ["1.0.0"]}, {"app": "v1.0.0+build.5"}, True),
        (
            {"attribute": "app", "operator": "semver_lte", "values": ["1.0.0"]},
            {"app": "not-a-version"},
            False,
        ),
    ],
)
def test_operators(condition: dict[str, Any], attributes: dict[str, Any], matches: bool) -> None:
    flag = compiled(enabled=True, rollout_bp=0, rules=(rule(**condition),))
    assert (flag.evaluate(user("u1", **attributes)).reason is Reason.TARGETING_MATCH) is matches


@pytest.mark.parametrize(
    ("condition", "where"),
    [
        ({"attribute": "", "operator": "in", "values": ["a"]}, "rules[0].attribute"),
        ({"attribute": "x", "operator": "like", "values": ["a"]}, "rules[0].operator"),
        ({"attribute": "x", "operator": "gt", "values": ["ten"]}, "rules[0].values"),
        ({"attribute": "x", "operator": "semver_gt", "values": ["1.2"]}, "rules[0].values"),
        ({"attribute": "x", "operator": "in", "values": []}, "rules[0].values"),
    ],
)
def test_bad_conditions_say_where(condition: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidInput) as err:
        Rule.parse({"conditions": [condition]}, "rules[0]", BOOL.variant_names)
    assert err.value.where is not None and err.value.where.startswith(
        where.replace("rules[0]", "rules[0].conditions[0]") if where != "rules[0].values" else "rules[0]"
    )


def test_rule_serving_an_unknown_variant_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="unknown variant 'purple'"):
        Rule.parse(
            {"attribute": "x", "operator": "in", "values": ["a"], "variant": "purple"},
            "rules[0]",
            BOOL.variant_names,
        )


def test_multivariate_split_follows_the_weights_and_keeps_users_when_the_rollout_grows() -> None:
    weights = parse_weights({"blue": 75, "green": 25}, COLORS)
    half = compiled(COLORS, enabled=True, rollout_bp=5000, weights=weights)
    full = compiled(COLORS, enabled=True, rollout_bp=10_000, weights=weights)
    keys = [f"user-{i}" for i in range(40_000)]
    at_half = {k: half.evaluate(user(k)).variant for k in keys}
    counts = Counter(at_half.values())
    assert abs(counts["control"] / len(keys) - 0.5) < 0.01
    assert abs(counts["blue"] / (counts["blue"] + counts["green"]) - 0.75) < 0.015
    for k, variant in at_half.items():
        if variant != "control":
            assert full.evaluate(user(k)).variant == variant
    assert full.evaluate(user("anyone")).reason is Reason.SPLIT


def test_multivariate_values_come_from_the_variant() -> None:
    res = compiled(COLORS, enabled=False).evaluate(user())
    assert (res.value, res.variant) == ("grey", "control")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (101, "from 0 to 100"),
        (-1, "from 0 to 100"),
        (12.345, "two decimals"),
        ("25", "a number"),
        (True, "a number"),
        (float("nan"), "a number"),
    ],
)
def test_bad_rollouts_are_rejected(value: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_rollout(value)


def test_rollout_accepts_two_decimals() -> None:
    assert parse_rollout(33.33) == 3333 and parse_rollout(0) == 0 and parse_rollout(100) == 10_000


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (("Bad Key",), "key"),
        (("ok", "colour"), "type"),
        (("ok", "string", "", [{"name": "a", "value": "x"}]), "variants"),
        (
            ("ok", "string", "", [{"name": "a", "value": "x"}, {"name": "a", "value": "y"}]),
            "variants[1].name",
        ),
        (("ok", "number", "", [{"name": "a", "value": 1}, {"name": "b", "value": "2"}]), "variants[1].value"),
        (
            ("ok", "string", "", [{"name": "a", "value": "x"}, {"name": "b", "value": "y"}], "c"),
            "off_variant",
        ),
        (("ok", "boolean", "", [{"name": "a", "value": True}]), "variants"),
    ],
)
def test_bad_flag_definitions_say_where(args: tuple[Any, ...], where: str) -> None:
    with pytest.raises(InvalidInput) as err:
        FlagDefinition.parse(*args)
    assert err.value.where == where


def test_weights_must_name_treatments_and_add_up() -> None:
    with pytest.raises(InvalidInput, match="add up to 100"):
        parse_weights({"blue": 50, "green": 40}, COLORS)
    with pytest.raises(InvalidInput, match="not a treatment variant"):
        parse_weights({"control": 100}, COLORS)


@pytest.mark.parametrize(
    "state",
    [
        {"enabled": True, "rollout_bp": 2500},
        {"enabled": False, "rollout_bp": 2500},
        {
            "enabled": True,
            "rollout_bp": 2500,
            "rules": (rule(attribute="email", operator="ends_with", values=["@example.com"]),),
        },
    ],
)
def test_the_sdk_fast_path_gives_the_same_answer_as_evaluate(state: dict[str, Any]) -> None:
    flag = compiled(**state)
    for i in range(5000):
        attributes = {"email": "dana@example.com" if i % 7 == 0 else "pat@else.org"}
        expected = flag.evaluate(EvaluationContext(f"user-{i}", attributes)).value is True
        assert flag.is_on(f"user-{i}", attributes) is expected


ACCOUNTS = compiled(enabled=True, rollout_bp=3000, bucket_by="account_id")


def test_every_user_of_an_account_gets_the_accounts_answer() -> None:
    for account in (f"acct-{a}" for a in range(200)):
        answers = {ACCOUNTS.evaluate(user(f"{account}-user-{u}", account_id=account)) for u in range(10)}
        assert len(answers) == 1, account
        (answer,) = answers
        assert answer.reason is Reason.SPLIT and answer.metadata == {"bucketedBy": "account_id"}
    shares = Counter(ACCOUNTS.evaluate(user("u", account_id=f"acct-{a}")).value for a in range(20_000))
    assert 0.28 < shares[True] / 20_000 < 0.32


def test_without_the_attribute_the_targeting_key_decides_and_the_answer_says_so() -> None:
    plain = compiled(enabled=True, rollout_bp=3000)
    for i in range(2000):
        res = ACCOUNTS.evaluate(user(f"user-{i}", account_id=True if i % 2 else ""))
        assert res.metadata == {"bucketedBy": "targetingKey"}
        assert res.value is plain.evaluate(user(f"user-{i}")).value


def test_the_attribute_stands_in_for_a_missing_targeting_key() -> None:
    assert ACCOUNTS.evaluate(user(None, account_id="acct-1")).error_code is None
    missing = ACCOUNTS.evaluate(user(None))
    assert missing.error_code is ErrorCode.TARGETING_KEY_MISSING
    assert "account_id" in (missing.error_message or "")


def test_a_flag_bucketed_by_attribute_leaves_the_fast_path_but_gives_the_same_answers() -> None:
    assert ACCOUNTS.fast_split is None
    assert compiled(enabled=True, rollout_bp=3000).fast_split == ("workstation:", 3000)
    assert compiled(enabled=False, rollout_bp=3000, bucket_by="account_id").fast_split == ("workstation:", 0)
    for i in range(2000):
        attributes = {"account_id": f"acct-{i % 37}"} if i % 3 else {}
        expected = ACCOUNTS.evaluate(EvaluationContext(f"user-{i}", attributes)).value is True
        assert ACCOUNTS.is_on(f"user-{i}", attributes) is expected


@pytest.mark.parametrize(
    ("value", "stored"), [(None, ""), ("targetingKey", ""), ("user_id", ""), ("account_id", "account_id")]
)
def test_bucket_by_names_an_attribute(value: object, stored: str) -> None:
    assert parse_bucket_by(value) == stored


@pytest.mark.parametrize("value", ["", 3, "x" * 129, ["account_id"]])
def test_bad_bucket_by_says_where(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_bucket_by(value)
    assert caught.value.where == "bucket_by"


SPLIT_RULE = Rule.parse(
    {"attribute": "country", "operator": "in", "values": ["DE", "AT"], "rollout": 50},
    "rules[0]",
    BOOL.variant_names,
)


def test_a_rule_can_serve_a_split_to_the_users_it_matches() -> None:
    flag = compiled(enabled=True, rollout_bp=0, rules=(SPLIT_RULE,))
    german = [flag.evaluate(user(f"user-{i}", country="DE")) for i in range(20_000)]
    assert {r.reason for r in german} == {Reason.SPLIT}
    assert 0.48 < sum(r.value is True for r in german) / len(german) < 0.52
    others = {flag.evaluate(user(f"user-{i}", country="FR")) for i in range(200)}
    assert {(r.value, r.reason) for r in others} == {(False, Reason.DEFAULT)}


def test_a_rules_split_is_sticky_and_grows_like_the_default_rollout() -> None:
    def rule_at(percent: float) -> CompiledFlag:
        raw = {"attribute": "country", "operator": "in", "values": ["DE"], "rollout": percent}
        return compiled(enabled=True, rules=(Rule.parse(raw, "rules[0]", BOOL.variant_names),))

    small, large = rule_at(10), rule_at(50)
    default_rollout = compiled(enabled=True, rollout_bp=1000)
    for i in range(5000):
        ctx = user(f"user-{i}", country="DE")
        if small.evaluate(ctx).value:
            assert large.evaluate(ctx).value is True
        # The same salt and bucket as the flag's own rollout: 10% in a rule is the same 10% of users.
        assert small.evaluate(ctx).value is default_rollout.evaluate(user(f"user-{i}")).value
    assert rule_at(0).evaluate(user(None, country="DE")).reason is Reason.TARGETING_MATCH
    assert rule_at(100).evaluate(user(None, country="DE")).value is True


def test_a_rules_split_follows_the_flags_weights_and_bucketing_unit() -> None:
    raw = {"attribute": "plan", "operator": "in", "values": ["team"], "rollout": 100}
    flag = compiled(
        COLORS,
        enabled=True,
        weights=(("blue", 7000), ("green", 3000)),
        bucket_by="account_id",
        rules=(Rule.parse(raw, "rules[0]", COLORS.variant_names),),
    )
    shares = Counter(flag.evaluate(user(f"u{i}", plan="team")).variant for i in range(10_000))
    assert 0.68 < shares["blue"] / 10_000 < 0.72 and shares["blue"] + shares["green"] == 10_000
    half = Rule.parse({**raw, "rollout": 60}, "rules[0]", COLORS.variant_names)
    flag = compiled(COLORS, enabled=True, bucket_by="account_id", rules=(half,))
    for a in range(100):
        answers = {flag.evaluate(user(f"u{u}", plan="team", account_id=f"a{a}")).variant for u in range(5)}
        assert len(answers) == 1


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"attribute": "country", "operator": "in", "values": ["DE"], "rollout": 101}, "rules[0].rollout"),
        ({"attribute": "country", "operator": "in", "values": ["DE"], "rollout": "half"}, "rules[0].rollout"),
        (
            {"attribute": "country", "operator": "in", "values": ["DE"], "rollout": 5, "variant": "on"},
            "rules[0].rollout",
        ),
    ],
)
def test_bad_rule_splits_say_where(raw: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        Rule.parse(raw, "rules[0]", BOOL.variant_names)
    assert caught.value.where == where


def test_a_rule_split_round_trips() -> None:
    assert Rule.parse(SPLIT_RULE.to_dict(), "rules[0]", BOOL.variant_names) == SPLIT_RULE
    assert SPLIT_RULE.to_dict()["rollout"] == 50


EMAIL_RULE = Rule.parse(
    {"attribute": "email", "operator": "ends_with", "values": ["@b"], "variant": "off"},
    "r",
    frozenset({"on", "off"}),
)


@pytest.mark.parametrize(
    ("state", "final"),
    [
        (FlagState(enabled=True, rollout_bp=10_000), "on"),
        (FlagState(enabled=False, rollout_bp=10_000), "off"),
        (FlagState(enabled=True, rollout_bp=0), "off"),
        (FlagState(enabled=True, rollout_bp=2_500), None),  # still split: nothing final to archive
        (FlagState(enabled=True, rollout_bp=10_000, rules=(EMAIL_RULE,)), None),
    ],
)
def test_an_archived_flag_answers_its_one_final_value_to_everyone(
    state: FlagState, final: str | None
) -> None:
    definition = FlagDefinition("old")
    assert final_variant(definition, state) == final
    archived = CompiledFlag(definition, state, archived=True)
    for ctx in (
        EvaluationContext("u-1"),
        EvaluationContext(None),
        EvaluationContext("u-2", {"email": "a@b"}),
    ):
        answer = archived.evaluate(ctx)
        assert (answer.variant, answer.reason, answer.error_code) == (final or "off", Reason.ARCHIVED, None)
    assert archived.fast_split is None  # the SDK's fast path would skip the reason and the exposure
    assert archived.is_on("u-3") is (final == "on")


def test_the_sdk_configuration_carries_the_archive() -> None:
    flag = CompiledFlag(
        FlagDefinition("old"), FlagState(enabled=True, rollout_bp=10_000, salt="old"), archived=True
    )
    _, _, decoded = decode_config(encode_config("production", 7, {"old": flag}))
    assert (
        decoded["old"].archived and decoded["old"].evaluate(EvaluationContext("u")).reason is Reason.ARCHIVED
    )
    live = CompiledFlag(FlagDefinition("new"), FlagState(enabled=True, rollout_bp=10_000, salt="new"))
    assert b"archived" not in encode_config("production", 7, {"new": live})


def environment(**states: FlagState) -> dict[str, CompiledFlag]:
    return compile_flags(
        (FlagDefinition.parse(key.replace("_", "-")), state) for key, state in states.items()
    )


def test_a_flag_needs_its_prerequisite_on_for_the_same_user() -> None:
    flags = environment(
        checkout=FlagState(enabled=True, rollout_bp=5000, salt="checkout"),
        express=FlagState(enabled=True, rollout_bp=10_000, prerequisites=(Prerequisite("checkout"),)),
    )
    for i in range(2000):
        ctx = user(f"user-{i}")
        base, dependent = flags["checkout"].evaluate(ctx), flags["express"].evaluate(ctx)
        assert dependent.value is base.value
        if not base.value:
            assert (dependent.reason, dependent.metadata) == (
                Reason.DEFAULT,
                {"prerequisiteFailed": "checkout"},
            )
    flags = environment(
        checkout=FlagState(enabled=False, rollout_bp=10_000),
        express=FlagState(enabled=True, rollout_bp=10_000, prerequisites=(Prerequisite("checkout"),)),
    )
    assert flags["express"].evaluate(user()).value is False
    assert flags["express"].fast_split is None and flags["express"].is_on("user-1") is False


def test_a_missing_prerequisite_or_a_cycle_that_slipped_in_is_unmet_not_an_endless_loop() -> None:
    alone = CompiledFlag(
        BOOL, FlagState(enabled=True, rollout_bp=10_000, prerequisites=(Prerequisite("gone"),))
    )
    assert alone.evaluate(user()).metadata == {"prerequisiteFailed": "gone"}
    flags = environment(
        a=FlagState(enabled=True, rollout_bp=10_000, prerequisites=(Prerequisite("b"),)),
        b=FlagState(enabled=True, rollout_bp=10_000, prerequisites=(Prerequisite("a"),)),
    )
    assert flags["a"].evaluate(user()).value is False


def test_prerequisites_are_checked_against_the_environment_when_saved() -> None:
    env = {
        "a": (BOOL, (Prerequisite("b"),)),
        "b": (BOOL, (Prerequisite("c"),)),
        "c": (BOOL, ()),
        "colors": (COLORS, ()),
    }
    check_prerequisites("c", (Prerequisite("colors", "blue"),), env)
    with pytest.raises(InvalidInput) as cycle:
        check_prerequisites("c", (Prerequisite("a"),), env)
    assert (str(cycle.value), cycle.value.where) == (
        "prerequisites would form a cycle: c → a → b → c",
        "prerequisites",
    )
    with pytest.raises(InvalidInput) as missing:
        check_prerequisites("c", (Prerequisite("colors"), Prerequisite("nope")), env)
    assert missing.value.where == "prerequisites[0].variant"
    with pytest.raises(InvalidInput) as unknown:
        check_prerequisites("c", (Prerequisite("nope"),), env)
    assert unknown.value.where == "prerequisites[0].flag"


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ("checkout", "prerequisites"),
        (["workstation"], "prerequisites[0].flag"),
        (["a", "a"], "prerequisites[1].flag"),
        ([{"flag": "a", "colour": "x"}], "prerequisites[0]"),
        ([{"flag": "a", "variant": ""}], "prerequisites[0].variant"),
        (["Bad Key"], "prerequisites[0].flag"),
        ([f"f{i}" for i in range(21)], "prerequisites"),
    ],
)
def test_bad_prerequisites_say_where(raw: object, where: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_prerequisites(raw, "workstation")
    assert caught.value.where == where
