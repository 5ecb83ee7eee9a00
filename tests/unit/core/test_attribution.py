"""Attribution follows the bucketing unit: a flag bucketed by account is recomputed from the account an event
carries in its tags, and its per-unit counts count accounts."""

from rampup.core.attribution import BatchAttribution, FlagTimeline, attribute
from rampup.core.flags import CompiledFlag, FlagDefinition, FlagState
from rampup.core.rollups import fold
from rampup.core.targeting import EvaluationContext
from rampup.core.telemetry import Kind, Observation

FLAG = FlagDefinition.parse("workstation")
STATE = FlagState(enabled=True, rollout_bp=4000, salt="workstation", version=2, bucket_by="account_id")
TIMELINES = {"workstation": FlagTimeline(FLAG, [0], [STATE])}


def event(user: str, account: str | None, engaged: bool = False) -> Observation:
    tags = {"account_id": account} if account is not None else None
    return Observation(Kind.CUSTOM, 5_000, user, name="click", engagement=engaged, tags=tags)


def test_events_are_attributed_to_their_accounts_variant() -> None:
    flag = CompiledFlag(FLAG, STATE)
    splitting = list(TIMELINES.items())
    for a in range(300):
        account = f"acct-{a}"
        expected = flag.evaluate(EvaluationContext("anyone", {"account_id": account})).variant
        for u in range(3):
            assert dict(attribute(event(f"{account}-u{u}", account), TIMELINES, splitting)) == {
                "workstation": expected
            }


def test_an_event_without_the_account_falls_back_to_its_user_like_evaluation() -> None:
    flag = CompiledFlag(FLAG, STATE)
    for u in range(300):
        expected = flag.evaluate(EvaluationContext(f"user-{u}")).variant
        assert dict(attribute(event(f"user-{u}", None), TIMELINES, list(TIMELINES.items()))) == {
            "workstation": expected
        }


def test_units_per_variant_are_accounts_when_the_flag_buckets_by_account() -> None:
    events = [event(f"acct-{a}-u{u}", f"acct-{a}", engaged=u == 0) for a in range(40) for u in range(5)]
    folded = fold(events, TIMELINES)
    accounts = {key.targeting_key for key in folded.units}
    assert accounts == {f"acct-{a}" for a in range(40)}
    assert all(
        counts == [5, 1, 0, 0] for counts in folded.units.values()
    )  # events, engaged, failed, exposures


def test_a_batch_is_attributed_as_each_of_its_events_alone() -> None:
    """The batch's lookups per reported flag map keep True, 1 and 1.0 apart, take maps it cannot remember (a
    value that isn't hashable), and still recompute the flags a map leaves out."""
    numbers = FlagDefinition.parse("tier", "number", variants={"one": 1, "two": 2})
    timelines = {
        **TIMELINES,
        "tier": FlagTimeline(
            numbers, [0], [FlagState(enabled=True, rollout_bp=10_000, salt="tier", version=1)]
        ),
        "boolean": FlagTimeline(
            FlagDefinition.parse("boolean"),
            [0],
            [FlagState(enabled=True, rollout_bp=5000, salt="boolean", version=1)],
        ),
    }
    maps: list[dict[str, object] | None] = [
        {"tier": 1},
        {"tier": True},
        {"tier": 1.0},
        {"boolean": True},
        {"boolean": 1},
        {"tier": 2, "context": ["not", "hashable"]},
        {"workstation": "on"},
        None,
    ]
    splitting = [(k, t) for k, t in timelines.items() if t.may_split_between(0, 10_000)]
    batch = BatchAttribution(timelines, 0, 10_000)
    for repeat in range(2):
        for i, flags in enumerate(maps):
            o = Observation(Kind.REQUEST, 5_000, f"user-{i}", flags=flags, tags={"account_id": f"acct-{i}"})
            assert batch.slots(o) == tuple(attribute(o, timelines, splitting)), (repeat, flags)
