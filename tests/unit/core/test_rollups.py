"""The fold: observations that stand for many (a Sentry sessions aggregate) counted as many, at the cost of one; and
every batch folded into what its observations add one by one."""

import itertools
import random
from typing import Any

import pytest

from rampup.core import sketch
from rampup.core.attribution import FlagTimeline, attribute
from rampup.core.flags import FlagDefinition, FlagState
from rampup.core.rollups import (
    ALL_VARIANT,
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    Aggregate,
    Folded,
    LatencyKey,
    RollupKey,
    UnitKey,
    fold,
)
from rampup.core.telemetry import (
    ALL_USERS,
    Aggregation,
    Contribution,
    CustomMetric,
    Kind,
    Observation,
    contributions,
)

FLAG = FlagDefinition.parse("workstation")
TIMELINES = {"workstation": FlagTimeline(FLAG, [0], [FlagState(enabled=True, rollout_bp=10_000, salt="ws")])}


def test_an_observation_with_a_count_folds_as_that_many() -> None:
    many = [
        Observation(Kind.SESSION, 7_000, "u1", {"workstation": True}, failed=False, count=10**9),
        Observation(Kind.SESSION, 7_500, "u1", {"workstation": True}, failed=True, count=3),
        Observation(Kind.SESSION, 7_900, "u1", {"workstation": True}, failed=True),
    ]
    folded = fold(many, TIMELINES)
    for resolution in (SECOND, HOUR):
        everyone = folded.rollups[
            RollupKey(ALL_USERS, ALL_VARIANT, "error_rate", resolution, 7 - 7 % resolution)
        ]
        assert (everyone.count, everyone.failures) == (10**9 + 4, 4)
    (units,) = folded.units.values()
    assert units == [10**9 + 4, 0, 4, 0]  # events, engaged, failures, exposures of the one user


def test_a_unit_counts_the_exposures_of_its_own_flag_among_its_events() -> None:
    both = {
        **TIMELINES,
        "checkout": FlagTimeline(FlagDefinition.parse("checkout"), [0], [FlagState(enabled=True, salt="c")]),
    }
    exposed = {"workstation": True, "checkout": False}
    observations = [
        # An exposure of workstation reporting checkout too, standing for three alike: an exposure of
        # workstation only, an event of both.
        Observation(Kind.EXPOSURE, 7_000, "u1", exposed, name="workstation", variant="on", count=3),
        Observation(Kind.EXPOSURE, 7_100, "u1", exposed, name="checkout", variant="off"),
        Observation(Kind.REQUEST, 7_200, "u1", exposed, value=12.0),
        Observation(Kind.EXPOSURE, 7_300, "u2", exposed, name="workstation", variant="on"),
        # A custom event named like the flag is no exposure.
        Observation(Kind.CUSTOM, 7_400, "u2", exposed, name="workstation"),
        Observation(Kind.EXPOSURE, 7_500, "u3", {"workstation": True}, name="workstation", variant="on"),
    ]
    units = fold(observations, both).units
    assert {(k.flag, k.targeting_key): c[0::3] for k, c in units.items()} == {  # events, exposures
        ("workstation", "u1"): [5, 3],
        ("checkout", "u1"): [5, 1],
        ("workstation", "u2"): [2, 1],
        ("checkout", "u2"): [2, 0],
        ("workstation", "u3"): [1, 1],
    }


# The fold against a straightforward one: seeded random batches of every kind of observation, flags reported
# (as names, values, text booleans, numbers that equal booleans, unhashable maps) or recomputed (by user or by
# account, across rollout changes inside the batch), over second, minute, hour and day edges.

CHECKOUT_P90 = CustomMetric("checkout_time", "checkout", Aggregation.PERCENTILE, tags=(("route", "/pay"),))
SHARES = CustomMetric("shares", "share", Aggregation.COUNT)
START_MS = 1_767_225_599_000  # one second before a day (and an hour, a minute) begins


def random_timelines(rng: random.Random) -> dict[str, FlagTimeline]:
    """A boolean flag whose rollout moves (during the batch or not), one bucketed by account (or by user), a number
    and a string flag with weights, one fully on (splitting nobody) and one off."""

    def state(rollout_bp: int, salt: str, **kw: Any) -> FlagState:
        return FlagState(enabled=True, rollout_bp=rollout_bp, salt=salt, version=rng.randrange(9), **kw)

    moves = sorted(rng.sample(range(START_MS - 10_000, START_MS + 10_000), 2))
    return {
        "checkout": FlagTimeline(
            FlagDefinition.parse("checkout"),
            [0, *moves],
            [state(rng.randrange(1, 9999), "a"), state(10_000, "a"), state(rng.randrange(1, 9999), "a")],
        ),
        "workstation": FlagTimeline(
            FLAG, [0], [state(rng.randrange(1, 9999), "ws", bucket_by=rng.choice(["account_id", ""]))]
        ),
        "tier": FlagTimeline(
            FlagDefinition.parse("tier", "number", variants={"one": 1, "two": 2.5}),
            [0],
            [state(5000, "tier")],
        ),
        "color": FlagTimeline(
            FlagDefinition.parse("color", "string", variants={"grey": "grey", "blue": "blue", "green": "g"}),
            [0],
            [state(6000, "color", weights=(("blue", 7000), ("green", 3000)))],
        ),
        "everyone": FlagTimeline(FlagDefinition.parse("everyone"), [0], [state(10_000, "e")]),
        "dark": FlagTimeline(FlagDefinition.parse("dark"), [0], [FlagState(salt="d")]),
    }


def random_observation(rng: random.Random, at_ms: int) -> Observation:
    kind = rng.choice(list(Kind))
    value = rng.choice([None, 0.0, 0.0005, round(rng.lognormvariate(4, 1.5), 3), float(rng.randrange(1, 6))])
    flags = rng.choice(
        [
            None,
            {},
            {"checkout": rng.choice([True, False, 1, 0, 1.0, "on", "off", "true", "no", "unknown"])},
            {"tier": rng.choice([1, 2.5, True, "one", 3]), "checkout": rng.random() < 0.5},
            {"color": rng.choice(["grey", "blue", "g", "green", 1]), "missing-flag": True},
            {"workstation": "on", "context": ["not", "hashable"]},
            {"everyone": True, "dark": "off"},
        ]
    )
    tags = rng.choice([None, {"route": "/pay"}, {"route": "/cart", "account_id": f"acct-{rng.randrange(5)}"}])
    return Observation(
        kind,
        at_ms,
        rng.choice([None, "", *(f"user-{u}" for u in range(12))]),
        flags,
        value,
        rng.random() < 0.3,
        # Names of flags too: an exposure of one counts for that flag's units only.
        rng.choice(["checkout", "share", "search", "lighthouse", "workstation", "color"])
        if kind is not Kind.FEEDBACK
        else "1-5",
        engagement=rng.random() < 0.4,
        tags=tags,
        count=rng.choice([1, 1, 1, 2, 7]),
    )


def reference_fold(observations: list[Observation], timelines: dict[str, FlagTimeline]) -> Folded:
    """Each observation added to every slot and resolution it feeds, one by one."""
    stamps = [o.at_ms for o in observations]
    splitting = [(k, t) for k, t in timelines.items() if t.may_split_between(min(stamps), max(stamps))]
    folded = Folded()
    for o in observations:
        fed = list(contributions(o, [CHECKOUT_P90, SHARES]))
        slots = list(attribute(o, timelines, splitting))
        second = o.at_ms // 1000
        for (flag, variant), (metric, failed, value, sketched) in itertools.product(
            [(ALL_USERS, ALL_VARIANT), *slots], fed
        ):
            for resolution in (SECOND, MINUTE, HOUR):
                key = RollupKey(flag, variant, metric, resolution, second - second % resolution)
                reference_add(folded.rollups.setdefault(key, Aggregate()), o, failed, value, sketched)
        for flag, variant in slots:
            reference_count(folded, o, fed, flag, variant, timelines[flag].unit_of(o))
    return folded


def reference_add(a: Aggregate, o: Observation, failed: bool, value: float | None, sketched: bool) -> None:
    a.count += o.count
    a.failures += failed * o.count
    if value is None:
        return
    a.total += value * o.count
    a.total_sq += value * value * o.count
    if a.last_at_ms is None or o.at_ms >= a.last_at_ms:
        a.last_value, a.last_at_ms = value, o.at_ms
    if sketched:
        a.sketch = a.sketch or {}
        a.sketch[sketch.bucket_of(value)] = a.sketch.get(sketch.bucket_of(value), 0) + o.count


def reference_count(
    folded: Folded, o: Observation, fed: list[Contribution], flag: str, variant: str, user: str | None
) -> None:
    if not user:
        return
    day, n = o.at_ms // 1000 // DAY, o.count
    failures = sum(failed for metric, failed, _, _ in fed if metric == "error_rate")
    unit = folded.units.setdefault(UnitKey(flag, variant, day, user), [0, 0, 0, 0])
    unit[0] += n
    unit[1] += o.engagement * n
    unit[2] += failures * n
    if o.kind is Kind.EXPOSURE and o.name == flag:
        unit[3] += n
    for metric, _, value, sketched in fed:
        if sketched and value is not None:
            octave = LatencyKey(flag, variant, day, user, metric, sketch.level_of(value))
            folded.latencies[octave] = folded.latencies.get(octave, 0) + n


@pytest.mark.parametrize("seed", range(40))
def test_the_fold_adds_what_each_observation_adds_alone(seed: int) -> None:
    rng = random.Random(seed)
    timelines = random_timelines(rng)
    # Each at a time of its own: which of two values at the same millisecond is the last one is not defined.
    times = rng.sample(range(START_MS - 3_000, START_MS + 3_000), rng.choice([1, 5, 300]))
    observations = [random_observation(rng, at_ms) for at_ms in times]
    folded = fold(observations, timelines, [CHECKOUT_P90, SHARES])
    expected = reference_fold(observations, timelines)
    assert folded.units == expected.units
    assert folded.latencies == expected.latencies
    assert folded.rollups.keys() == expected.rollups.keys()
    for key, a in folded.rollups.items():
        e = expected.rollups[key]
        # Sums are added in another order (per group of observations attributed alike, then per slot).
        assert a.total == pytest.approx(e.total, rel=1e-12)
        assert a.total_sq == pytest.approx(e.total_sq, rel=1e-12)
        a.total, a.total_sq = e.total, e.total_sq
        assert a == e, key
    assert all(type(k) is UnitKey for k in folded.units) and all(
        type(k) is LatencyKey for k in folded.latencies
    )
