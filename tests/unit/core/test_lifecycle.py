"""When a flag is ready for cleanup, stale, or permanent."""

from datetime import UTC, datetime, timedelta

import pytest

from rampup.core.lifecycle import (
    MAX_REFERENCES,
    Activity,
    FlagKind,
    Lifecycle,
    Status,
    Why,
    assess,
    changed,
    parse_notify,
    parse_references,
)
from rampup.errors import InvalidInput, TooLarge

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def _release(**changes: object) -> Activity:
    values: dict[str, object] = {
        "kind": FlagKind.RELEASE,
        "created_at": T0,
        "changed_at": T0,
        "last_evaluated_at": T0,
    }
    values.update(changes)
    return Activity(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("after", "rolled_back", "expected"),
    [
        (2 * DAY, False, Status.ACTIVE),
        (3 * DAY, False, Status.READY_FOR_CLEANUP),
        (10 * DAY, True, Status.ACTIVE),  # rolled back after completing: not done yet
    ],
)
def test_ready_for_cleanup_three_days_after_completion_without_rollback(
    after: timedelta, rolled_back: bool, expected: Status
) -> None:
    activity = _release(completed_at=T0, rolled_back_since=rolled_back, last_evaluated_at=T0 + after)
    life = assess(activity, T0 + after)
    assert life.status is expected
    if expected is Status.READY_FOR_CLEANUP:
        assert life.reasons == (Why.ROLLOUT_COMPLETED,) and life.since == T0 + 3 * DAY


def test_stale_past_the_kinds_lifetime() -> None:
    operational = _release(kind=FlagKind.OPERATIONAL, last_evaluated_at=T0 + 8 * DAY)
    life = assess(operational, T0 + 8 * DAY)
    assert (life.status, life.reasons, life.since) == (Status.STALE, (Why.PAST_LIFETIME,), T0 + 7 * DAY)
    assert assess(operational, T0 + 6 * DAY).status is Status.ACTIVE
    assert assess(_release(last_evaluated_at=T0 + 39 * DAY), T0 + 39 * DAY).status is Status.ACTIVE


def test_stale_when_not_evaluated_for_30_days_even_if_young() -> None:
    life = assess(_release(changed_at=T0 + 20 * DAY), T0 + 31 * DAY)
    assert (life.status, life.reasons, life.idle) == (Status.STALE, (Why.NOT_EVALUATED,), 31 * DAY)
    never = assess(_release(last_evaluated_at=None), T0 + 31 * DAY)  # never evaluated: idle since created
    assert never.reasons == (Why.NOT_EVALUATED,)


def test_stale_wins_over_ready_and_lists_every_reason() -> None:
    life = assess(_release(completed_at=T0), T0 + 50 * DAY)
    assert life.status is Status.STALE
    assert life.reasons == (Why.PAST_LIFETIME, Why.NOT_EVALUATED)


@pytest.mark.parametrize("kind", [FlagKind.KILL_SWITCH, FlagKind.PERMISSION])
def test_kill_switches_and_permissions_never_go_stale(kind: FlagKind) -> None:
    life = assess(_release(kind=kind, completed_at=T0, last_evaluated_at=None), T0 + 400 * DAY)
    assert (life.status, life.reasons) == (Status.ACTIVE, (Why.PERMANENT,))


def test_archived_is_final() -> None:
    assert assess(_release(archived_at=T0 + DAY), T0 + 90 * DAY).status is Status.ARCHIVED


def test_each_change_of_status_once() -> None:
    stale = Lifecycle(Status.STALE, (Why.NOT_EVALUATED,), T0)
    active = Lifecycle(Status.ACTIVE, (), None)
    assert changed({"a": Status.ACTIVE, "b": Status.STALE}, {"a": stale, "b": stale, "c": active}) == {
        "a": stale
    }
    assert changed({}, {"new": stale}) == {"new": stale}


def test_unknown_kind_says_which_exist() -> None:
    with pytest.raises(InvalidInput, match="unknown flag kind 'temp'; use one of: release, experiment"):
        FlagKind.parse("temp")


GOOD_REF = {
    "file": "app/views.py",
    "line": 12,
    "kind": "wrapper-use",
    "detail": "enabled",
    "scope": "f",
    "code": "x",
}


def test_pushed_references_are_read_field_by_field() -> None:
    (ref,) = parse_references([GOOD_REF])
    assert ref.to_dict() == GOOD_REF
    assert parse_references([{"file": "a.ts", "line": 1, "kind": "env"}])[0].code == ""


@pytest.mark.parametrize(
    ("raw", "where"),
    [
        ({"file": "a.py"}, "references"),
        ([["a.py", 1]], "references[0]"),
        ([{**GOOD_REF, "line": 0}], "references[0].line"),
        ([{**GOOD_REF, "line": True}], "references[0].line"),
        ([{**GOOD_REF, "kind": "guess"}], "references[0].kind"),
        ([{**GOOD_REF, "file": ""}], "references[0].file"),
        ([{**GOOD_REF, "code": "x" * 1001}], "references[0].code"),
        ([{**GOOD_REF, "scope": "a\x00b"}], "references[0].scope"),
        ([GOOD_REF, {**GOOD_REF, "owner": "me"}], "references[1].owner"),
    ],
)
def test_a_malformed_reference_is_refused_naming_where(raw: object, where: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        parse_references(raw)
    assert refused.value.where == where


def test_too_many_references_are_too_large() -> None:
    with pytest.raises(TooLarge):
        parse_references([GOOD_REF] * (MAX_REFERENCES + 1))


def test_notify_is_a_short_list_of_names_each_once() -> None:
    assert parse_notify(["a", "b", "a"]) == ("a", "b")
    for bad in ("a", [""], [1], ["c"] * 21):
        with pytest.raises(InvalidInput):
            parse_notify(bad)
