"""Segments: who is in one (listed keys or every condition), rules that refer to them, what is refused, and the
SDK configuration that carries them."""

from typing import Any

import pytest

from rampup.adapters.codecs.sdk_config import decode_config, encode_config
from rampup.core.flags import FlagDefinition, FlagState, Reason, compile_flags
from rampup.core.segments import Segment, check_segment_references, parse_keys, parse_segment_conditions
from rampup.core.targeting import EvaluationContext, Rule, condition_text
from rampup.errors import InvalidInput

BOOL = FlagDefinition.parse("workstation")
BETA = Segment(
    "beta",
    keys=frozenset(f"tester-{i}" for i in range(50_000)),
    conditions=parse_segment_conditions(
        [
            {"attribute": "plan", "operator": "in", "values": ["team"]},
            {"attribute": "seats", "operator": "gte", "values": [100]},
        ]
    ),
)
STAFF = Segment(
    "staff",
    conditions=parse_segment_conditions(
        [{"attribute": "email", "operator": "ends_with", "values": ["@corp.io"]}]
    ),
)
UNUSED = Segment("unused", keys=frozenset({"someone"}))
SEGMENTS = {s.key: s for s in (BETA, STAFF, UNUSED)}


def rule(raw: dict[str, Any]) -> Rule:
    return Rule.parse(raw, "rules[0]", BOOL.variant_names)


@pytest.mark.parametrize(
    ("key", "attributes", "member"),
    [
        ("tester-49999", {}, True),  # listed
        ("tester-50000", {}, False),
        ("u", {"plan": "team", "seats": 120}, True),  # every condition holds
        ("u", {"plan": "team", "seats": 20}, False),
        ("u", {"plan": "team"}, False),  # a missing attribute does not hold
        (None, {"plan": "team", "seats": 500}, True),  # conditions need no targeting key
    ],
)
def test_who_is_in_a_segment(key: str | None, attributes: dict[str, Any], member: bool) -> None:
    assert BETA.contains(EvaluationContext(key, attributes)) is member


def test_a_segment_with_neither_keys_nor_conditions_holds_nobody() -> None:
    assert not Segment("empty").contains(EvaluationContext("u", {"plan": "team"}))


def test_rules_refer_to_segments_in_and_not_in_and_inline() -> None:
    flags = compile_flags(
        [
            (
                BOOL,
                FlagState(
                    enabled=True,
                    salt="workstation",
                    version=2,
                    rules=(
                        rule({"operator": "not_in_segment", "values": ["beta", "staff"], "variant": "off"}),
                        rule(
                            {"conditions": [{"operator": "in_segment", "values": ["beta"]}], "variant": "on"}
                        ),
                    ),
                    rollout_bp=10_000,
                ),
            )
        ],
        segments=SEGMENTS,
    )
    flag = flags["workstation"]
    outsider = flag.evaluate(EvaluationContext("nobody", {}))
    assert (outsider.value, outsider.reason) == (False, Reason.TARGETING_MATCH)
    assert flag.evaluate(EvaluationContext("tester-3", {})).reason is Reason.TARGETING_MATCH
    staff = flag.evaluate(EvaluationContext("x", {"email": "ann@corp.io"}))  # in staff only: the rollout
    assert (staff.value, staff.reason) == (True, Reason.DEFAULT)
    assert not flag.is_on("nobody") and flag.is_on("tester-3")
    assert set(flag.segments) == {"beta", "staff"}


def test_a_rule_naming_a_segment_the_evaluator_lacks_holds_nobody() -> None:
    alone = compile_flags(
        [(BOOL, FlagState(enabled=True, rules=(rule({"operator": "in_segment", "values": ["beta"]}),)))]
    )
    assert alone["workstation"].evaluate(EvaluationContext("tester-1", {})).value is False


def test_the_sdk_configuration_carries_the_segments_rules_use_and_answers_the_same() -> None:
    state = FlagState(
        enabled=True,
        salt="workstation",
        version=4,
        rollout_bp=2_000,
        rules=(rule({"operator": "in_segment", "values": ["beta"]}),),
    )
    flags = compile_flags([(BOOL, state)], segments=SEGMENTS)
    document = encode_config("production", 9, flags)
    assert b'"unused"' not in document and b'"staff"' not in document
    _, _, decoded = decode_config(document)
    contexts = [EvaluationContext(f"tester-{i}", {}) for i in range(49_990, 50_010)] + [
        EvaluationContext("u", {"plan": "team", "seats": 100}),
        EvaluationContext(f"user-{3}", {"plan": "free"}),
    ]
    for ctx in contexts:
        assert decoded["workstation"].evaluate(ctx) == flags["workstation"].evaluate(ctx)
    assert encode_config("production", 9, decoded) == document


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"operator": "in_segment", "values": ["Not A Key"]}, "rules[0].values[0]"),
        ({"operator": "in_segment", "values": [7]}, "rules[0].values[0]"),
        (
            {
                "operator": "in_segment",
                "values": ["beta"],
                "conditions": [{"operator": "in_segment", "values": ["beta"]}],
            },
            "rules[0].conditions",
        ),
        ({"attribute": "plan", "operator": "no_such_op", "values": ["x"]}, "rules[0].operator"),
    ],
)
def test_bad_segment_conditions_are_refused_where_they_are(raw: dict[str, Any], where: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        rule(raw)
    assert refused.value.where == where


def test_limits_and_references() -> None:
    with pytest.raises(InvalidInput) as long_key:
        parse_keys(["fine", "x" * 257], "keys")
    assert long_key.value.where == "keys[1]"
    with pytest.raises(InvalidInput) as empty_key:
        parse_keys([""], "add_keys")
    assert empty_key.value.where == "add_keys[0]"
    with pytest.raises(InvalidInput) as too_many:
        parse_keys(["k"] * 100_001, "keys")
    assert too_many.value.where == "keys"
    assert parse_keys(["a", "a", "b"], "keys") == frozenset({"a", "b"})
    rules = (
        rule(
            {
                "conditions": [
                    {"attribute": "plan", "operator": "in", "values": ["pro"]},
                    {"operator": "not_in_segment", "values": ["beta", "gamma"]},
                ]
            }
        ),
    )
    with pytest.raises(
        InvalidInput, match="segment 'gamma' does not exist in environment 'production'"
    ) as missing:
        check_segment_references(rules, ["beta"], "production")
    assert missing.value.where == "rules[0].conditions[1].values[1]"


def test_conditions_in_one_line() -> None:
    assert [
        condition_text(c.to_dict())
        for c in rule(
            {
                "conditions": [
                    {"operator": "in_segment", "values": ["beta", "staff"]},
                    {"operator": "not_in_segment", "values": ["blocked"]},
                    {"attribute": "country", "operator": "in", "values": ["DE", "AT"]},
                ]
            }
        ).conditions
    ] == ["segment in beta,staff", "segment not_in blocked", "country in DE,AT"]
