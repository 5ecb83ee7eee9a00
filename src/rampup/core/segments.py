"""Segments: named, reusable sets of users in one environment, which rules refer to (`in_segment`).

A user is in a segment when their targeting key is one of its listed keys (a set: one lookup however many), or
when the segment has conditions and all of them hold. Segments do not refer to other segments.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rampup.core.targeting import SEGMENT_KEY, Condition, EvaluationContext, Rule
from rampup.errors import InvalidInput

__all__ = [
    "SEGMENT_KEY",
    "MAX_SEGMENT_KEYS",
    "MAX_KEY_LENGTH",
    "MAX_SEGMENT_CONDITIONS",
    "MAX_ENVIRONMENT_KEYS",
    "Segment",
    "parse_segment_key",
    "parse_keys",
    "parse_segment_conditions",
    "segments_in",
    "check_segment_references",
]

MAX_SEGMENT_KEYS = 100_000  # listed keys in one segment
MAX_ENVIRONMENT_KEYS = 1_000_000  # listed keys over every segment of one environment: what each process holds
MAX_KEY_LENGTH = 256
MAX_SEGMENT_CONDITIONS = 100


@dataclass(frozen=True, slots=True)
class Segment:
    key: str
    description: str = ""
    conditions: tuple[Condition, ...] = ()
    keys: frozenset[str] = frozenset()
    version: int = 1

    def contains(self, ctx: EvaluationContext) -> bool:
        if ctx.targeting_key is not None and ctx.targeting_key in self.keys:
            return True
        return bool(self.conditions) and all(c.holds(ctx) for c in self.conditions)

    def summary(self) -> dict[str, Any]:
        """The segment without its keys (they may be a hundred thousand): what lists and the audit trail show."""
        return {
            "key": self.key,
            "description": self.description,
            "conditions": [c.to_dict() for c in self.conditions],
            "key_count": len(self.keys),
            "version": self.version,
        }

    def to_config(self) -> dict[str, Any]:
        """What an SDK needs to evaluate it (keys sorted, so one configuration encodes to one document)."""
        return {
            "key": self.key,
            "conditions": [c.to_dict() for c in self.conditions],
            "keys": sorted(self.keys),
        }

    @classmethod
    def from_config(cls, raw: Mapping[str, Any]) -> "Segment":
        return cls(
            parse_segment_key(raw["key"]),
            conditions=parse_segment_conditions(raw["conditions"]),
            keys=parse_keys(raw["keys"], "keys"),
        )


def parse_segment_key(key: Any) -> str:
    if not isinstance(key, str) or not SEGMENT_KEY.match(key):
        raise InvalidInput(f"segment key {key!r} must match {SEGMENT_KEY.pattern}", where="key")
    return key


def parse_keys(raw: Any, where: str) -> frozenset[str]:
    """A list of targeting keys: each a non-empty string of at most MAX_KEY_LENGTH characters."""
    if not isinstance(raw, list) or len(raw) > MAX_SEGMENT_KEYS:
        raise InvalidInput(f"{where} is a list of at most {MAX_SEGMENT_KEYS} targeting keys", where=where)
    for i, key in enumerate(raw):
        if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
            raise InvalidInput(
                f"a targeting key is a string of 1 to {MAX_KEY_LENGTH} characters", where=f"{where}[{i}]"
            )
    return frozenset(raw)


def parse_segment_conditions(raw: Any) -> tuple[Condition, ...]:
    if not isinstance(raw, list) or len(raw) > MAX_SEGMENT_CONDITIONS:
        raise InvalidInput(
            f"conditions is a list of at most {MAX_SEGMENT_CONDITIONS} conditions", where="conditions"
        )
    conditions = []
    for i, item in enumerate(raw):
        where = f"conditions[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(
                "a condition is an object with 'attribute', 'operator' and 'values'", where=where
            )
        condition = Condition.parse(item, where)
        if condition.operator.is_segment:
            raise InvalidInput("a segment's conditions cannot refer to segments", where=f"{where}.operator")
        conditions.append(condition)
    return tuple(conditions)


def segments_in(rules: Iterable[Rule]) -> set[str]:
    """The segments these rules refer to."""
    return {name for rule in rules for c in rule.conditions if c.operator.is_segment for name in c.values}


def check_segment_references(rules: tuple[Rule, ...], known: Iterable[str], environment: str) -> None:
    """Refuses rules naming a segment the environment lacks, saying where."""
    existing = set(known)
    for i, rule in enumerate(rules):
        for j, condition in enumerate(rule.conditions):
            if not condition.operator.is_segment:
                continue
            for k, name in enumerate(condition.values):
                if name not in existing:
                    raise InvalidInput(
                        f"segment {name!r} does not exist in environment {environment!r}"
                        " (rampup segment list --env " + environment + ")",
                        where=f"rules[{i}].conditions[{j}].values[{k}]",
                    )
