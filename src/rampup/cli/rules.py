"""The one-line rule syntax of `rampup flag set --rule`:

email ends_with @example.com -> on
user_id in u-1,u-2 and app_version semver_gte 2.1.0 -> on
country in DE,AT -> 50%          (a percentage split among the users it matches)
"""

from typing import Any

from rampup.core.targeting import Operator
from rampup.errors import InvalidInput

__all__ = ["parse_rule"]


def _number(text: str, rule: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"{text!r} is not a number", where=f"--rule {rule!r}") from None


def parse_rule(text: str) -> dict[str, Any]:
    body, _, variant = text.partition("->")
    conditions = []
    for part in body.split(" and "):
        words = part.split(None, 2)
        if len(words) != 3:
            raise InvalidInput(
                f"cannot read condition {part.strip()!r}: write 'ATTRIBUTE OPERATOR VALUE[,VALUE…]'",
                where=f"--rule {text!r}",
            )
        attribute, operator, values = words
        if operator not in Operator.__members__.values():
            raise InvalidInput(
                f"unknown operator {operator!r}; use one of: " + ", ".join(Operator), where=f"--rule {text!r}"
            )
        parsed = [v.strip() for v in values.split(",")]
        typed: list[Any] = [_number(v, text) for v in parsed] if Operator(operator).is_numeric else parsed
        conditions.append({"attribute": attribute, "operator": operator, "values": typed})
    served = variant.strip() or "on"
    if served.endswith("%"):
        return {"conditions": conditions, "rollout": _number(served[:-1], text)}
    return {"conditions": conditions, "variant": served}
