"""Targeting rules: conditions on the evaluation context, as pure predicates.

A rule matches when all of its conditions hold; the first matching rule serves its variant.
A condition on an attribute the context does not carry never matches (it is not an error).
"""

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from rampup.core.bucketing import parse_rollout
from rampup.errors import InvalidInput

if TYPE_CHECKING:
    from rampup.core.segments import Segment

__all__ = [
    "Operator",
    "Condition",
    "Rule",
    "EvaluationContext",
    "parse_semver",
    "SEGMENT_KEY",
    "NO_SEGMENTS",
    "condition_text",
]

SEGMENT_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}\Z")
NO_SEGMENTS: "Mapping[str, Segment]" = MappingProxyType({})

# Context attributes that name the targeting key: OpenFeature's spelling, ours, and the usual user ids.
TARGETING_KEY_ATTRIBUTES = frozenset({"targeting_key", "targetingKey", "user_id", "key"})


@dataclass(frozen=True, slots=True)
class EvaluationContext:
    targeting_key: str | None = None
    attributes: Mapping[str, Any] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.attributes is None:
            object.__setattr__(self, "attributes", {})

    def get(self, attribute: str) -> Any:
        if attribute in TARGETING_KEY_ATTRIBUTES and self.targeting_key is not None:
            return self.targeting_key
        return self.attributes.get(attribute)


_SEMVER = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?$"
)


def parse_semver(text: str) -> tuple[Any, ...] | None:
    """A sortable key with semver 2.0 precedence, or None if `text` is not a version."""
    m = _SEMVER.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        return None
    major, minor, patch, pre = m.groups()
    # A release sorts after all its pre-releases; numeric identifiers sort before alphanumeric ones.
    pre_key: tuple[Any, ...] = (
        (1,) if pre is None else (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    )
    return (int(major), int(minor), int(patch), pre_key)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _compare(
    convert: Callable[[Any], Any], test: Callable[[Any, Any], bool]
) -> Callable[[Any, tuple[Any, ...]], bool]:
    def predicate(actual: Any, values: tuple[Any, ...]) -> bool:
        a = convert(actual)
        return a is not None and any(test(a, convert(v)) for v in values)

    return predicate


def _text(test: Callable[[str, str], bool]) -> Callable[[Any, tuple[Any, ...]], bool]:
    def predicate(actual: Any, values: tuple[Any, ...]) -> bool:
        return isinstance(actual, str) and any(test(actual, str(v)) for v in values)

    return predicate


def _equals(actual: Any, values: tuple[Any, ...]) -> bool:
    return any(actual == v or (not isinstance(actual, str) and str(actual) == v) for v in values)


class Operator(StrEnum):
    EQUALS = "equals"
    NOT_EQUALS = "not_equals"
    IN = "in"
    NOT_IN = "not_in"
    STARTS_WITH = "starts_with"
    ENDS_WITH = "ends_with"
    CONTAINS = "contains"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    SEMVER_EQ = "semver_eq"
    SEMVER_GT = "semver_gt"
    SEMVER_GTE = "semver_gte"
    SEMVER_LT = "semver_lt"
    SEMVER_LTE = "semver_lte"
    IN_SEGMENT = "in_segment"  # the user is in one of the named segments (no attribute)
    NOT_IN_SEGMENT = "not_in_segment"  # … in none of them

    @property
    def is_numeric(self) -> bool:
        return self in _NUMERIC

    @property
    def is_semver(self) -> bool:
        return self.value.startswith("semver_")

    @property
    def is_segment(self) -> bool:
        return self in _SEGMENT

    def holds(self, actual: Any, values: tuple[Any, ...]) -> bool:
        return _PREDICATES[self](actual, values)


_NUMERIC = frozenset({Operator.GT, Operator.GTE, Operator.LT, Operator.LTE})
_SEGMENT = frozenset({Operator.IN_SEGMENT, Operator.NOT_IN_SEGMENT})

_PREDICATES: dict[Operator, Callable[[Any, tuple[Any, ...]], bool]] = {
    Operator.EQUALS: _equals,
    Operator.IN: _equals,
    Operator.NOT_EQUALS: lambda a, vs: a is not None and not _equals(a, vs),
    Operator.NOT_IN: lambda a, vs: a is not None and not _equals(a, vs),
    Operator.STARTS_WITH: _text(str.startswith),
    Operator.ENDS_WITH: _text(str.endswith),
    Operator.CONTAINS: _text(lambda a, v: v in a),
    Operator.GT: _compare(_number, lambda a, v: v is not None and a > v),
    Operator.GTE: _compare(_number, lambda a, v: v is not None and a >= v),
    Operator.LT: _compare(_number, lambda a, v: v is not None and a < v),
    Operator.LTE: _compare(_number, lambda a, v: v is not None and a <= v),
    Operator.SEMVER_EQ: _compare(parse_semver, lambda a, v: v is not None and a == v),
    Operator.SEMVER_GT: _compare(parse_semver, lambda a, v: v is not None and a > v),
    Operator.SEMVER_GTE: _compare(parse_semver, lambda a, v: v is not None and a >= v),
    Operator.SEMVER_LT: _compare(parse_semver, lambda a, v: v is not None and a < v),
    Operator.SEMVER_LTE: _compare(parse_semver, lambda a, v: v is not None and a <= v),
}


@dataclass(frozen=True, slots=True)
class Condition:
    attribute: str
    operator: Operator
    values: tuple[Any, ...]

    @classmethod
    def parse(cls, raw: Mapping[str, Any], where: str) -> "Condition":
        try:
            operator = Operator(str(raw.get("operator")))
        except ValueError:
            choices = ", ".join(o.value for o in Operator)
            raise InvalidInput(
                f"unknown operator {raw.get('operator')!r}; use one of: {choices}", where=f"{where}.operator"
            ) from None
        values = raw.get("values", raw.get("value"))
        values = tuple(values) if isinstance(values, list | tuple) else (values,)
        if operator.is_segment:
            return cls._segment(operator, values, where)
        attribute = raw.get("attribute")
        if not isinstance(attribute, str) or not attribute:
            raise InvalidInput(
                "a condition needs an 'attribute' (a non-empty string)", where=f"{where}.attribute"
            )
        if not values or any(v is None or isinstance(v, dict | list) for v in values):
            raise InvalidInput("'values' must be one or more strings or numbers", where=f"{where}.values")
        if operator.is_numeric and any(_number(v) is None for v in values):
            raise InvalidInput(
                f"operator {operator.value} compares numbers; got {list(values)}", where=f"{where}.values"
            )
        if operator.is_semver and any(parse_semver(v) is None for v in values):
            raise InvalidInput(
                f"operator {operator.value} compares versions like 1.4.0; got {list(values)}",
                where=f"{where}.values",
            )
        return cls(attribute, operator, values)

    @classmethod
    def _segment(cls, operator: Operator, values: tuple[Any, ...], where: str) -> "Condition":
        """`in_segment` / `not_in_segment`: the values name segments; whether they exist is checked when saved."""
        for i, name in enumerate(values):
            if not isinstance(name, str) or not SEGMENT_KEY.match(name):
                raise InvalidInput(
                    f"{name!r} is not a segment key ({SEGMENT_KEY.pattern})", where=f"{where}.values[{i}]"
                )
        return cls("", operator, values)

    def holds(self, ctx: EvaluationContext, segments: "Mapping[str, Segment]" = NO_SEGMENTS) -> bool:
        if self.operator.is_segment:
            # A segment the evaluator lacks holds nobody (saving refuses such a rule: only a hand-made config has one).
            member = any(name in segments and segments[name].contains(ctx) for name in self.values)
            return member is (self.operator is Operator.IN_SEGMENT)
        actual = ctx.get(self.attribute)
        return actual is not None and self.operator.holds(actual, self.values)

    def to_dict(self) -> dict[str, Any]:
        if self.operator.is_segment:
            return {"operator": self.operator.value, "values": list(self.values)}
        return {"attribute": self.attribute, "operator": self.operator.value, "values": list(self.values)}


@dataclass(frozen=True, slots=True)
class Rule:
    conditions: tuple[Condition, ...]
    variant: str  # "" when the rule serves a rollout
    rollout_bp: int | None = None  # a percentage split among matching units instead of one variant

    @classmethod
    def parse(cls, raw: Any, where: str, variants: frozenset[str]) -> "Rule":
        if not isinstance(raw, Mapping):
            raise InvalidInput("a rule is an object with 'conditions' and 'variant'", where=where)
        # A single condition may be written inline: {"attribute", "operator", "values", "variant"}.
        inline = "attribute" in raw or "operator" in raw
        if inline and "conditions" in raw:
            raise InvalidInput(
                "a rule has 'conditions' or one inline condition ('attribute', 'operator', 'values'), not both",
                where=f"{where}.conditions",
            )
        raw_conditions = raw.get("conditions", [raw] if inline else None)
        if not isinstance(raw_conditions, list) or not raw_conditions:
            raise InvalidInput("a rule needs at least one condition", where=f"{where}.conditions")
        # An inline condition's mistakes are named where they were written: rules[0].values, not …conditions[0].
        places = [where] if inline else [f"{where}.conditions[{i}]" for i in range(len(raw_conditions))]
        conditions = tuple(
            Condition.parse(c, place) if isinstance(c, Mapping) else _not_an_object(place)
            for place, c in zip(places, raw_conditions, strict=True)
        )
        if "rollout" in raw:
            if "variant" in raw:
                raise InvalidInput(
                    "a rule serves either a variant or a rollout percentage, not both",
                    where=f"{where}.rollout",
                )
            return cls(conditions, "", parse_rollout(raw["rollout"], f"{where}.rollout"))
        variant = raw.get("variant", "on")
        if variant not in variants:
            raise InvalidInput(
                f"rule serves unknown variant {variant!r}; the flag has {sorted(variants)}",
                where=f"{where}.variant",
            )
        return cls(conditions, variant)

    def matches(self, ctx: EvaluationContext, segments: "Mapping[str, Segment]" = NO_SEGMENTS) -> bool:
        return all(c.holds(ctx, segments) for c in self.conditions)

    def to_dict(self) -> dict[str, Any]:
        served = {"variant": self.variant} if self.rollout_bp is None else {"rollout": self.rollout_bp / 100}
        return {"conditions": [c.to_dict() for c in self.conditions], **served}


def condition_text(condition: Mapping[str, Any], separator: str = ",") -> str:
    """A condition (as `Condition.to_dict` gives it) in the one-line rule syntax: `country in DE,AT`,
    `segment in beta-testers`."""
    values = separator.join(map(str, condition["values"]))
    operator = Operator(condition["operator"])
    if operator.is_segment:
        return f"segment {'in' if operator is Operator.IN_SEGMENT else 'not_in'} {values}"
    return f"{condition['attribute']} {operator.value} {values}"


def _not_an_object(where: str) -> Condition:
    raise InvalidInput("a condition is an object with 'attribute', 'operator' and 'values'", where=where)
