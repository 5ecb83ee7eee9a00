"""Which variant of which flag an observation belongs to.

In order: the observation's own flag map (what the client saw); else, for flags that were splitting
users at the observation's time, the variant recomputed from its targeting key with the bucketing and
the rollout in force then. Flags at 0% or 100% split nobody, so they are not recomputed.

A flag bucketed by an attribute (`bucket_by: account_id`) is recomputed from that attribute when the
event carries it in its tags, and its per-unit counts (users per variant, engagement per user) count
those units: accounts, not users.
"""

import bisect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from rampup.core.bucketing import BUCKETS, bucketing_unit
from rampup.core.flags import CompiledFlag, FlagDefinition, FlagState
from rampup.core.targeting import EvaluationContext
from rampup.core.telemetry import Observation

__all__ = ["BatchAttribution", "FlagTimeline", "attribute", "variants_of"]

_NO_FLAGS: Mapping[str, Any] = {}
_TEXT_BOOLEANS = {"true": True, "false": False, "1": True, "0": False, "on": True, "off": False}


@dataclass(frozen=True, slots=True)
class FlagTimeline:
    """A flag's rollout state over time in one environment."""

    definition: FlagDefinition
    since_ms: Sequence[int]  # ascending; state i holds from since_ms[i] on
    states: Sequence[FlagState]
    _compiled: list[CompiledFlag] = field(init=False, repr=False, compare=False)
    _by_value: dict[Any, str] = field(init=False, repr=False, compare=False)
    _bucketed_by_attribute: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rule_free = [CompiledFlag(self.definition, replace(s, rules=())) for s in self.states]
        object.__setattr__(self, "_compiled", rule_free)
        object.__setattr__(self, "_bucketed_by_attribute", any(s.bucket_by for s in self.states))
        by_value: dict[Any, str] = {}
        for v in self.definition.variants:
            if isinstance(v.value, str | int | float | bool):
                by_value.setdefault((type(v.value) is bool, v.value), v.name)
        object.__setattr__(self, "_by_value", by_value)

    def variant_of(self, reported: Any) -> str | None:
        """The variant a client reported, given as a variant name or a value ('true' from a Sentry tag too)."""
        if isinstance(reported, str):
            if reported in self.definition.variant_names:
                return reported
            lowered = reported.strip().lower()
            if lowered in _TEXT_BOOLEANS and (True, True) in self._by_value:
                reported = _TEXT_BOOLEANS[lowered]
        if isinstance(reported, str | int | float | bool):
            return self._by_value.get((type(reported) is bool, reported))
        return None

    @property
    def bucketed_by_attribute(self) -> bool:
        """Whether some state buckets by an attribute: only then are its units anything but targeting keys."""
        return self._bucketed_by_attribute

    def same_state_between(self, first_ms: int, last_ms: int) -> bool:
        return bisect.bisect_right(self.since_ms, first_ms) == bisect.bisect_right(self.since_ms, last_ms)

    def may_split_between(self, first_ms: int, last_ms: int) -> bool:
        start = max(0, bisect.bisect_right(self.since_ms, first_ms) - 1)
        end = bisect.bisect_right(self.since_ms, last_ms)
        return any(s.enabled and 0 < s.rollout_bp < BUCKETS for s in self.states[start:end])

    def unit_of(self, o: Observation) -> str | None:
        """The unit an observation counts for in this flag's per-unit figures: what its users are bucketed by."""
        if not self._bucketed_by_attribute:
            return o.targeting_key
        i = bisect.bisect_right(self.since_ms, o.at_ms) - 1
        bucket_by = self.states[i].bucket_by if i >= 0 else ""
        return bucketing_unit(bucket_by, o.targeting_key, o.tags or {})[0]

    def splitting_at(self, at_ms: int) -> CompiledFlag | None:
        i = bisect.bisect_right(self.since_ms, at_ms) - 1
        if i < 0:
            return None
        state = self.states[i]
        return self._compiled[i] if state.enabled and 0 < state.rollout_bp < BUCKETS else None


def attribute(
    o: Observation, timelines: Mapping[str, FlagTimeline], splitting: Sequence[tuple[str, FlagTimeline]]
) -> Iterator[tuple[str, str]]:
    """`splitting`: the timelines that may split users around the observation's time (a batch narrows it)."""
    reported = o.flags or {}
    yield from _reported(reported, timelines)
    yield from _recomputed(o, reported, splitting)


# A flag map's reported variants, the splitting flags it leaves out, and their variants recomputed per user.
_Judged = tuple[
    tuple[tuple[str, str], ...], list[tuple[str, FlagTimeline]], dict[str, tuple[tuple[str, str], ...]]
]


class BatchAttribution:
    """`attribute` for the observations of one batch (between `first_ms` and `last_ms`), as a tuple (`slots`): the
    variants of a reported flag map are looked up once per distinct map (a batch repeats a few), and only the flags
    it leaves out are recomputed — once per user and map when that gives the same answer for each of their events."""

    def __init__(self, timelines: Mapping[str, FlagTimeline], first_ms: int, last_ms: int):
        self._timelines = timelines
        self._splitting = [(k, t) for k, t in timelines.items() if t.may_split_between(first_ms, last_ms)]
        # A flag that keeps one state through the batch and buckets by the targeting key gives a user the same
        # variant in every event (a timeline's states are evaluated without their rules): then each user's
        # recomputed variants are worked out once.
        self._per_user = all(
            t.same_state_between(first_ms, last_ms) and not t.bucketed_by_attribute
            for _, t in self._splitting
        )
        self._by_map: dict[tuple[Any, ...], _Judged] = {}

    def slots(self, o: Observation) -> tuple[tuple[str, str], ...]:
        reported = o.flags or _NO_FLAGS
        # Types in the key: True == 1 == 1.0 as keys, but a boolean flag's variant is not a number's.
        key = (*reported.items(), *map(type, reported.values()))
        try:
            known = self._by_map.get(key)
        except TypeError:  # a value that isn't hashable (a Sentry context): look it up every time
            known = self._judge(reported)
        else:
            if known is None:
                known = self._by_map[key] = self._judge(reported)
        slots, unreported, by_user = known
        if not unreported:
            return slots
        if not (self._per_user and o.targeting_key):
            return slots + _recomputed(o, _NO_FLAGS, unreported)
        recomputed = by_user.get(o.targeting_key)
        if recomputed is None:
            recomputed = by_user[o.targeting_key] = _recomputed(o, _NO_FLAGS, unreported)
        return slots + recomputed

    def _judge(self, reported: Mapping[str, Any]) -> _Judged:
        unreported = [(k, t) for k, t in self._splitting if k not in reported]
        return tuple(_reported(reported, self._timelines)), unreported, {}


def _reported(
    reported: Mapping[str, Any], timelines: Mapping[str, FlagTimeline]
) -> Iterator[tuple[str, str]]:
    for key, value in reported.items():
        timeline = timelines.get(key)
        variant = timeline.variant_of(value) if timeline is not None else None
        if variant is not None:
            yield key, variant


def _recomputed(
    o: Observation, reported: Mapping[str, Any], splitting: Sequence[tuple[str, FlagTimeline]]
) -> tuple[tuple[str, str], ...]:
    """The variants of the flags splitting users that the client did not report, from its targeting key. (A tuple,
    not a generator: made for each event that leaves a splitting flag out.)"""
    if not o.targeting_key and not o.tags:
        return ()
    ctx: EvaluationContext | None = None
    found: list[tuple[str, str]] = []
    for key, timeline in splitting:
        if key in reported:
            continue
        flag = timeline.splitting_at(o.at_ms)
        if flag is not None:
            ctx = ctx or EvaluationContext(o.targeting_key, o.tags or {})
            variant = flag.evaluate(ctx).variant
            if variant is not None:
                found.append((key, variant))
    return tuple(found)


def variants_of(o: Observation, timelines: Mapping[str, FlagTimeline]) -> dict[str, str]:
    """Every flag's variant for one observation (feedback is kept with them, one by one)."""
    splitting = [(k, t) for k, t in timelines.items() if t.may_split_between(o.at_ms, o.at_ms)]
    return dict(attribute(o, timelines, splitting))
