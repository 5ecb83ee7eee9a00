"""Flags, their per-environment state, and evaluation with OpenFeature reasons.

Evaluation never raises: a problem comes back as a Resolution with reason ERROR and an error code.
"""

import math
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import Any

import mmh3

from rampup.core.bucketing import (
    BUCKETS,
    TARGETING_KEY,
    bucket,
    bucketing_unit,
    parse_rollout,
    variant_bucket,
)
from rampup.core.segments import Segment, segments_in
from rampup.core.targeting import NO_SEGMENTS, TARGETING_KEY_ATTRIBUTES, EvaluationContext, Rule
from rampup.errors import InvalidInput

__all__ = [
    "FLAG_KEY",
    "FlagType",
    "Reason",
    "ErrorCode",
    "Variant",
    "FlagDefinition",
    "FlagState",
    "Resolution",
    "CompiledFlag",
    "parse_rollout",
    "parse_weights",
    "parse_bucket_by",
    "Prerequisite",
    "parse_prerequisites",
    "check_prerequisites",
    "compile_flags",
    "MAX_PREREQUISITE_DEPTH",
    "flag_not_found",
    "final_variant",
]

FLAG_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}\Z")
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}\Z")
MAX_TAGS = 20


class FlagType(StrEnum):
    BOOLEAN = "boolean"
    STRING = "string"
    NUMBER = "number"
    OBJECT = "object"

    def accepts(self, value: Any) -> bool:
        match self:
            case FlagType.BOOLEAN:
                return isinstance(value, bool)
            case FlagType.STRING:
                return isinstance(value, str)
            case FlagType.NUMBER:
                return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
            case FlagType.OBJECT:
                return isinstance(value, dict)


class Reason(StrEnum):
    STATIC = "STATIC"
    TARGETING_MATCH = "TARGETING_MATCH"
    SPLIT = "SPLIT"
    DISABLED = "DISABLED"
    DEFAULT = "DEFAULT"
    ERROR = "ERROR"
    ARCHIVED = "ARCHIVED"  # the flag is archived: everyone gets its final value (Rampup's own reason)


class ErrorCode(StrEnum):
    FLAG_NOT_FOUND = "FLAG_NOT_FOUND"
    TARGETING_KEY_MISSING = "TARGETING_KEY_MISSING"
    INVALID_CONTEXT = "INVALID_CONTEXT"
    PARSE_ERROR = "PARSE_ERROR"
    TYPE_MISMATCH = "TYPE_MISMATCH"
    GENERAL = "GENERAL"


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    value: Any


BOOLEAN_VARIANTS = (Variant("on", True), Variant("off", False))


@dataclass(frozen=True, slots=True)
class FlagDefinition:
    """What a flag is, the same in every environment."""

    key: str
    type: FlagType = FlagType.BOOLEAN
    description: str = ""
    variants: tuple[Variant, ...] = BOOLEAN_VARIANTS
    off_variant: str = "off"
    tags: tuple[str, ...] = ()  # free labels to find flags by (team-checkout, q3-launch)
    owner: str = ""  # who answers for the flag: a person or a team

    @classmethod
    def parse(
        cls,
        key: Any,
        type_: Any = "boolean",
        description: Any = "",
        variants: Any = None,
        off_variant: Any = None,
    ) -> "FlagDefinition":
        if not isinstance(key, str) or not FLAG_KEY.match(key):
            raise InvalidInput(
                f"flag key {key!r} must match {FLAG_KEY.pattern} (lower-case letters, digits, '_', '.', '-')",
                where="key",
            )
        try:
            flag_type = FlagType(type_)
        except ValueError:
            raise InvalidInput(
                f"unknown flag type {type_!r}; use one of: " + ", ".join(t.value for t in FlagType),
                where="type",
            ) from None
        if not isinstance(description, str):
            raise InvalidInput("description must be a string", where="description")
        if flag_type is FlagType.BOOLEAN:
            if variants not in (None, [], {}):
                raise InvalidInput("boolean flags have the fixed variants 'on' and 'off'", where="variants")
            return cls(key, flag_type, description)
        parsed = _parse_variants(variants, flag_type)
        names = [v.name for v in parsed]
        off = names[0] if off_variant is None else off_variant
        if off not in names:
            raise InvalidInput(f"off_variant {off!r} is not one of the variants {names}", where="off_variant")
        return cls(key, flag_type, description, parsed, off)

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    @property
    def variant_names(self) -> frozenset[str]:
        return frozenset(v.name for v in self.variants)

    @property
    def treatment_variants(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants if v.name != self.off_variant)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "type": self.type.value,
            "description": self.description,
            "variants": [{"name": v.name, "value": v.value} for v in self.variants],
            "off_variant": self.off_variant,
            "tags": list(self.tags),
            "owner": self.owner or None,
        }

    def labelled(self, tags: Any, owner: Any) -> "FlagDefinition":
        """This definition with the tags and owner given (None: unchanged), checked."""
        if tags is not None:
            if not isinstance(tags, list) or len(tags) > MAX_TAGS:
                raise InvalidInput(f"tags is a list of at most {MAX_TAGS} labels", where="tags")
            for i, tag in enumerate(tags):
                if not isinstance(tag, str) or not TAG.match(tag):
                    raise InvalidInput(f"tag {tag!r} must match {TAG.pattern}", where=f"tags[{i}]")
            tags = tuple(dict.fromkeys(tags))
        if owner is not None and (not isinstance(owner, str) or len(owner) > 200):
            raise InvalidInput("owner is a person or team, at most 200 characters", where="owner")
        return replace(
            self,
            tags=self.tags if tags is None else tags,
            owner=self.owner if owner is None else owner.strip(),
        )


def _parse_variants(raw: Any, flag_type: FlagType) -> tuple[Variant, ...]:
    if isinstance(raw, Mapping):
        raw = [{"name": k, "value": v} for k, v in raw.items()]
    if not isinstance(raw, list) or len(raw) < 2:
        raise InvalidInput(f"a {flag_type.value} flag needs at least two variants", where="variants")
    seen: set[str] = set()
    variants = []
    for i, item in enumerate(raw):
        where = f"variants[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"]:
            raise InvalidInput('a variant is {"name": …, "value": …}', where=where)
        if item["name"] in seen:
            raise InvalidInput(f"variant {item['name']!r} is named twice", where=f"{where}.name")
        if not flag_type.accepts(item.get("value")):
            raise InvalidInput(
                f"value of variant {item['name']!r} is not a {flag_type.value}", where=f"{where}.value"
            )
        seen.add(item["name"])
        variants.append(Variant(item["name"], item["value"]))
    return tuple(variants)


MAX_PREREQUISITES = 20
MAX_PREREQUISITE_DEPTH = 16  # a chain deeper than this (or a cycle that slipped past saving) is unmet


@dataclass(frozen=True, slots=True)
class Prerequisite:
    """Another flag that must give this variant to the same user first."""

    flag: str
    variant: str = "on"

    def to_dict(self) -> dict[str, Any]:
        return {"flag": self.flag, "variant": self.variant}


def parse_prerequisites(raw: Any, key: str) -> tuple[Prerequisite, ...]:
    """`["checkout-v2"]` or `[{"flag": "checkout-v2", "variant": "on"}]`: which flags must be on for the user.
    Whether the flags exist and form no cycle is checked against the environment when saved."""
    if not isinstance(raw, list) or len(raw) > MAX_PREREQUISITES:
        raise InvalidInput(
            f"prerequisites is a list of at most {MAX_PREREQUISITES} flags", where="prerequisites"
        )
    parsed: list[Prerequisite] = []
    for i, item in enumerate(raw):
        where = f"prerequisites[{i}]"
        item = {"flag": item} if isinstance(item, str) else item
        if not isinstance(item, Mapping) or set(item) - {"flag", "variant"}:
            raise InvalidInput('a prerequisite is a flag key or {"flag": …, "variant": …}', where=where)
        flag, variant = item.get("flag"), item.get("variant", "on")
        if not isinstance(flag, str) or not FLAG_KEY.match(flag):
            raise InvalidInput(f"prerequisite {flag!r} is not a flag key", where=f"{where}.flag")
        if flag == key or any(p.flag == flag for p in parsed):
            raise InvalidInput(f"flag {flag!r} is named twice (or is this flag)", where=f"{where}.flag")
        if not isinstance(variant, str) or not variant:
            raise InvalidInput("variant is the prerequisite's variant name", where=f"{where}.variant")
        parsed.append(Prerequisite(flag, variant))
    return tuple(parsed)


def check_prerequisites(
    key: str,
    prerequisites: tuple[Prerequisite, ...],
    environment: Mapping[str, tuple[FlagDefinition, tuple[Prerequisite, ...]]],
) -> None:
    """Refuses prerequisites naming a flag or variant the environment lacks, or closing a cycle (named in full).
    `environment`: every flag of the environment → its definition and current prerequisites."""
    for i, p in enumerate(prerequisites):
        if p.flag not in environment:
            raise InvalidInput(
                f"prerequisite flag {p.flag!r} does not exist", where=f"prerequisites[{i}].flag"
            )
        names = environment[p.flag][0].variant_names
        if p.variant not in names:
            raise InvalidInput(
                f"flag {p.flag!r} has no variant {p.variant!r}; it has {sorted(names)}",
                where=f"prerequisites[{i}].variant",
            )
    graph = {k: [p.flag for p in prs] for k, (_, prs) in environment.items()}
    graph[key] = [p.flag for p in prerequisites]
    cycle = _path_back(key, graph, [key])
    if cycle is not None:
        raise InvalidInput("prerequisites would form a cycle: " + " → ".join(cycle), where="prerequisites")


def _path_back(target: str, graph: Mapping[str, list[str]], path: list[str]) -> list[str] | None:
    """A path from path[-1] back to `target` along prerequisites, if there is one (depth first)."""
    for nxt in graph.get(path[-1], []):
        if nxt == target:
            return [*path, nxt]
        if nxt not in path:
            found = _path_back(target, graph, [*path, nxt])
            if found is not None:
                return found
    return None


@dataclass(frozen=True, slots=True)
class FlagState:
    """A flag's settings in one environment."""

    enabled: bool = False
    rollout_bp: int = 0  # basis points: 2500 = 25%
    rules: tuple[Rule, ...] = ()
    salt: str = ""
    weights: tuple[tuple[str, int], ...] = ()  # treatment variant → basis points of the treatment group
    version: int = 0
    bucket_by: str = ""  # the context attribute users are bucketed by ("": the targeting key)
    prerequisites: tuple[Prerequisite, ...] = ()

    @property
    def rollout(self) -> float:
        return self.rollout_bp / 100

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "rollout": self.rollout,
            "rules": [r.to_dict() for r in self.rules],
            "salt": self.salt,
            "weights": {name: bp / 100 for name, bp in self.weights},
            "bucket_by": self.bucket_by or None,
            "prerequisites": [p.to_dict() for p in self.prerequisites],
            "version": self.version,
        }


def parse_bucket_by(value: Any, where: str = "bucket_by") -> str:
    """A context attribute to bucket by; null or a name of the targeting key mean the targeting key."""
    if value is None:
        return ""
    if not isinstance(value, str) or not value or len(value) > 128:
        raise InvalidInput(
            f"bucket_by names a context attribute (1 to 128 characters), got {value!r}", where=where
        )
    return "" if value in TARGETING_KEY_ATTRIBUTES else value


def parse_weights(raw: Any, definition: FlagDefinition) -> tuple[tuple[str, int], ...]:
    """Weights of the treatment variants in percent (summing to 100); empty means an equal split."""
    if raw in (None, {}):
        return ()
    if not isinstance(raw, Mapping):
        raise InvalidInput("weights map variant names to percentages", where="weights")
    treatments = definition.treatment_variants
    weights = []
    for name, value in raw.items():
        if name not in treatments:
            raise InvalidInput(
                f"{name!r} is not a treatment variant of this flag ({list(treatments)})",
                where=f"weights.{name}",
            )
        weights.append((name, parse_rollout(value, f"weights.{name}")))
    if sum(bp for _, bp in weights) != BUCKETS:
        raise InvalidInput("weights must add up to 100", where="weights")
    return tuple(weights)


NO_METADATA: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Resolution:
    flag_key: str
    value: Any
    variant: str | None
    reason: Reason
    version: int = 0
    error_code: ErrorCode | None = None
    error_message: str | None = None
    # Notes beside the reason, in OFREP's flag metadata: `bucketedBy` names the unit a split used.
    metadata: Mapping[str, str] = field(default_factory=lambda: NO_METADATA, hash=False)


class CompiledFlag:
    """A flag ready to evaluate in one environment: everything derivable is derived once."""

    __slots__ = (
        "key",
        "definition",
        "state",
        "version",
        "archived",
        "_final",
        "_off",
        "_salt",
        "_threshold",
        "_cumulative",
        "_single",
        "_fallthrough",
        "_resolutions",
        "_prefix",
        "_simple",
        "_bucket_by",
        "_on_below",
        "_peers",
        "_unmet",
        "_segments",
    )

    def __init__(self, definition: FlagDefinition, state: FlagState, archived: bool = False) -> None:
        self.key = definition.key
        self.definition = definition
        self.state = state
        self.version = state.version
        self.archived = archived
        # An archived flag answers what everyone got when it was archived (a state that still told users apart
        # cannot be archived; should one be, it answers the off variant).
        self._final = (final_variant(definition, state) or definition.off_variant) if archived else None
        self._off = definition.off_variant
        self._salt = state.salt or definition.key
        self._threshold = state.rollout_bp
        self._bucket_by = state.bucket_by
        treatments = definition.treatment_variants
        weights = state.weights or _equal_split(treatments)
        running, cumulative = 0, []
        for name, bp in weights:
            running += bp
            cumulative.append((running, name))
        self._cumulative = tuple(cumulative)
        self._single = cumulative[0][1] if len(cumulative) == 1 else None
        self._fallthrough = Reason.DEFAULT if state.rules else Reason.STATIC
        self._prefix = f"{self._salt}:"
        # A boolean flag split by percentage of targeting keys alone: `is_on` answers it with one hash and one
        # compare. A disabled flag is off for everyone whatever else it has.
        self._simple = (
            definition.type is FlagType.BOOLEAN
            and not archived
            and (not state.enabled or (not state.rules and not state.bucket_by and not state.prerequisites))
        )
        # The environment's flags, for prerequisites: `compile_flags` links them; alone a flag has no peers.
        self._peers: Mapping[str, CompiledFlag] = {}
        self._segments: Mapping[str, Segment] = NO_SEGMENTS  # the environment's, linked by `compile_flags`
        self._unmet = {
            p.flag: Resolution(
                self.key,
                definition.variant(self._off).value,
                self._off,
                Reason.DEFAULT,
                self.version,
                metadata=MappingProxyType({"prerequisiteFailed": p.flag}),
            )
            for p in state.prerequisites
        }
        self._on_below = state.rollout_bp if state.enabled else 0
        # Every answer this flag can give, built once: evaluating only picks one.
        units = (None, state.bucket_by, TARGETING_KEY) if state.bucket_by else (None,)
        self._resolutions: dict[tuple[str, Reason, str | None], Resolution] = {
            (v.name, reason, unit): Resolution(
                self.key,
                v.value,
                v.name,
                reason,
                self.version,
                metadata=NO_METADATA if unit is None else MappingProxyType({"bucketedBy": unit}),
            )
            for v in definition.variants
            for reason in Reason
            if reason is not Reason.ERROR
            for unit in units
        }

    @property
    def fast_split(self) -> tuple[str, int] | None:
        """(bucket prefix, threshold) when the boolean value is murmur3(prefix + targeting key) % 10000 <
        threshold for every user with a targeting key, as `is_on` computes it; None for any other flag."""
        if not self._simple:
            return None
        return self._prefix, self._on_below

    @property
    def segments(self) -> dict[str, Segment]:
        """The segments this flag's rules refer to (those the environment has)."""
        return {n: self._segments[n] for n in sorted(segments_in(self.state.rules)) if n in self._segments}

    def _resolve(self, variant: str, reason: Reason, unit: str | None = None) -> Resolution:
        return self._resolutions[variant, reason, unit]

    def is_on(self, targeting_key: str, attributes: Mapping[str, Any] | None = None) -> bool:
        """The boolean value for a user: the hot path of SDKs. Same answer as `evaluate`, bit for bit."""
        if self._simple and targeting_key:
            return mmh3.hash(self._prefix + targeting_key, signed=False) % BUCKETS < self._on_below
        return self.evaluate(EvaluationContext(targeting_key, attributes or {})).value is True

    def evaluate(self, ctx: EvaluationContext, depth: int = 0) -> Resolution:
        if self._final is not None:
            return self._resolve(self._final, Reason.ARCHIVED)
        if not self.state.enabled:
            return self._resolve(self._off, Reason.DISABLED)
        for prerequisite in self.state.prerequisites:
            peer = self._peers.get(prerequisite.flag)
            if (
                peer is None
                or depth >= MAX_PREREQUISITE_DEPTH
                or peer.evaluate(ctx, depth + 1).variant != prerequisite.variant
            ):
                return self._unmet[prerequisite.flag]
        for rule in self.state.rules:
            if rule.matches(ctx, self._segments):
                if rule.rollout_bp is None:
                    return self._resolve(rule.variant, Reason.TARGETING_MATCH)
                return self._rollout(rule.rollout_bp, ctx, Reason.TARGETING_MATCH)
        return self._rollout(self._threshold, ctx, self._fallthrough)

    def _rollout(self, threshold: int, ctx: EvaluationContext, whole: Reason) -> Resolution:
        """A percentage rollout (the flag's, or a rule's): at 0% and 100% nobody is split, so `whole` is the
        reason; otherwise the unit's bucket decides, with the flag's salt, so every rollout of a flag is
        monotonic and a unit in one stays in as it grows."""
        if threshold == 0:
            return self._resolve(self._off, whole)
        if threshold >= BUCKETS and self._single is not None:
            return self._resolve(self._single, whole)
        unit, bucketed_by = bucketing_unit(self._bucket_by, ctx.targeting_key, ctx.attributes)
        if not unit:
            return Resolution(
                self.key,
                None,
                None,
                Reason.ERROR,
                self.version,
                ErrorCode.TARGETING_KEY_MISSING,
                f"flag {self.key!r} is rolled out to a percentage of users and needs a targeting key"
                + (f" (or the attribute {self._bucket_by!r})" if self._bucket_by else ""),
            )
        return self._split(unit, bucketed_by if self._bucket_by else None, threshold)

    def _split(self, unit: str, bucketed_by: str | None, threshold: int) -> Resolution:
        """A unit's place in the percentage rollout, then among the weighted variants."""
        if bucket(self._salt, unit) >= threshold:
            return self._resolve(self._off, Reason.SPLIT, bucketed_by)
        if self._single is not None:
            return self._resolve(self._single, Reason.SPLIT, bucketed_by)
        position = variant_bucket(self._salt, unit)
        for upper, name in self._cumulative:
            if position < upper:
                return self._resolve(name, Reason.SPLIT, bucketed_by)
        return self._resolve(self._cumulative[-1][1], Reason.SPLIT, bucketed_by)


def compile_flags(
    flags: Iterable[tuple[FlagDefinition, FlagState]],
    archived: Collection[str] = frozenset(),
    segments: Mapping[str, Segment] = NO_SEGMENTS,
) -> dict[str, CompiledFlag]:
    """One environment's flags (and which of them are archived, by key), compiled and linked to each other for
    their prerequisites and to the environment's segments (by key) for their rules. Server, SDK and the
    evaluation tester all evaluate what this builds."""
    compiled = {
        definition.key: CompiledFlag(definition, state, definition.key in archived)
        for definition, state in flags
    }
    for flag in compiled.values():
        flag._peers = compiled
        flag._segments = segments
    return compiled


def _equal_split(names: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    share, extra = divmod(BUCKETS, len(names))
    return tuple((name, share + (1 if i < extra else 0)) for i, name in enumerate(names))


def final_variant(definition: FlagDefinition, state: FlagState) -> str | None:
    """The one variant everyone gets in this state, or None while it still tells users apart."""
    if not state.enabled or (state.rollout_bp == 0 and not state.rules):
        return definition.off_variant
    if state.rollout_bp < BUCKETS or state.rules:
        return None
    treatments = definition.treatment_variants
    if len(treatments) == 1:
        return treatments[0]
    whole = [name for name, bp in state.weights if bp >= BUCKETS]
    return whole[0] if whole else None


def flag_not_found(key: str) -> Resolution:
    return Resolution(key, None, None, Reason.ERROR, 0, ErrorCode.FLAG_NOT_FOUND, f"flag {key!r} not found")
