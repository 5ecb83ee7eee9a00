"""The one-line rule syntax of `rampup flag set --rule` (and of `rampup segment --condition`, without `->`):

email ends_with @example.com -> on
user_id in u-1,u-2 and app_version semver_gte 2.1.0 -> on
country in DE,AT -> 50%          (a percentage split among the users it matches)
segment in beta-testers -> on    (users in a segment; `segment not_in …` for those in none of them)
"""

from typing import Any

from rampup.core.targeting import Operator
from rampup.errors import InvalidInput

__all__ = ["parse_rule", "parse_condition"]

# `segment in X` and `segment not_in X` name segments, not a context attribute called "segment".
_SEGMENT_OPERATORS = {"in": Operator.IN_SEGMENT, "not_in": Operator.NOT_IN_SEGMENT}


def _number(text: str, rule: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a number", where=f"--rule {rule!r}") from None


def parse_condition(part: str, where: str) -> dict[str, Any]:
    words = part.split(None, 2)
    if len(words) != 3:
        raise InvalidInput(
            f"cannot read condition {part.strip()!r}: write 'ATTRIBUTE OPERATOR VALUE[,VALUE…]'", where=where
        )
    attribute, operator, values = words
    parsed = [v.strip() for v in values.split(",")]
    if attribute == "segment" and operator in _SEGMENT_OPERATORS:
        return {"operator": _SEGMENT_OPERATORS[operator].value, "values": parsed}
    if operator not in Operator.__members__.values():
        raise InvalidInput(f"unknown operator {operator!r}; use one of: " + ", ".join(Operator), where=where)
    typed: list[Any] = [_number(v, part) for v in parsed] if Operator(operator).is_numeric else parsed
    return {"attribute": attribute, "operator": operator, "values": typed}


def parse_rule(text: str) -> dict[str, Any]:
    body, _, variant = text.partition("->")
    conditions = [parse_condition(part, f"--rule {text!r}") for part in body.split(" and ")]
    served = variant.strip() or "on"
    if served.endswith("%"):
        return {"conditions": conditions, "rollout": _number(served[:-1], text)}
    return {"conditions": conditions, "variant": served}
