"""Segments over the in-memory store: a change moves every flag that uses it at once and is audited on the segment
and on each of those flags; a segment in use cannot go; a rule naming a missing one is refused where it is."""

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from rampup.bootstrap import Container
from rampup.core.segments import MAX_SEGMENT_KEYS
from rampup.core.targeting import EvaluationContext
from rampup.errors import Conflict, InvalidInput
from rampup.services import segments as segments_service

AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
IN_BETA = {"conditions": [{"operator": "in_segment", "values": ["beta"]}], "variant": "on"}


@pytest.fixture
def c(memory_container: Callable[..., Container]) -> Container:
    container = memory_container(lambda: AT)
    container.segments.create("production", {"key": "beta", "keys": ["u-1", "u-2"]}, "dana")
    for key in ("checkout", "search"):
        container.flags.create_flag({"key": key}, "dana")
        container.flags.set_state(key, "production", {"enabled": True, "rules": [IN_BETA]}, "dana")
    return container


def answer(c: Container, flag: str, user: str, **attributes: str) -> bool:
    compiled = c.snapshots.current.flags["production"][flag]
    return compiled.evaluate(EvaluationContext(user, attributes)).value is True


def test_one_change_moves_every_flag_that_uses_it_and_is_audited_on_each(c: Container) -> None:
    assert [answer(c, f, u) for f in ("checkout", "search") for u in ("u-1", "u-3")] == [True, False] * 2
    before = c.snapshots.current.revision
    view = c.segments.update(
        "production",
        "beta",
        {
            "add_keys": ["u-3"],
            "remove_keys": ["u-1"],
            "conditions": [{"attribute": "plan", "operator": "in", "values": ["team"]}],
            "reason": "new testers",
        },
        "ci-token",
    )
    assert (view.record.key_count, view.record.segment.version, view.used_by) == (
        2,
        2,
        ("checkout", "search"),
    )
    assert c.snapshots.current.revision > before  # the instance's snapshot (and so the streams) moved
    assert [answer(c, f, u) for f in ("checkout", "search") for u in ("u-1", "u-3")] == [False, True] * 2
    assert answer(c, "checkout", "u-9", plan="team")
    entries = c.flags.audit(limit=3)
    assert [(e.action, e.target, e.actor, e.reason) for e in entries] == [
        ("flag.segment", "flag:search", "ci-token", "new testers"),
        ("flag.segment", "flag:checkout", "ci-token", "new testers"),
        ("segment.update", "segment:beta", "ci-token", "new testers"),
    ]
    change, previous = entries[2].after, entries[2].before
    assert change is not None and previous is not None
    assert (change["keys_added"], change["keys_removed"], change["used_by"]) == (
        {"count": 1, "first": ["u-3"]},
        {"count": 1, "first": ["u-1"]},
        ["checkout", "search"],
    )
    assert previous["key_count"] == 2 and "keys" not in previous


def test_a_segment_in_use_is_not_deleted_and_a_missing_one_is_refused_where_it_is(c: Container) -> None:
    with pytest.raises(Conflict, match="used by the rules of checkout, search"):
        c.segments.delete("production", "beta", "dana")
    rules = [
        {
            "conditions": [
                {"attribute": "plan", "operator": "in", "values": ["pro"]},
                {"operator": "not_in_segment", "values": ["beta", "gamma"]},
            ],
            "variant": "on",
        }
    ]
    with pytest.raises(InvalidInput, match="segment 'gamma' does not exist") as refused:
        c.flags.set_state("checkout", "production", {"rules": rules}, "dana")
    assert refused.value.where == "rules[0].conditions[1].values[1]"
    with pytest.raises(InvalidInput):  # the same name in another environment is another segment
        c.flags.set_state("checkout", "staging", {"rules": [IN_BETA]}, "dana")
    assert c.flags.flag("checkout").states["production"].version == 2
    for key in ("checkout", "search"):
        c.flags.set_state(key, "production", {"rules": []}, "dana")
    c.segments.delete("production", "beta", "dana")
    assert c.segments.segments("production") == []


def test_limits_refuse_and_change_nothing(c: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    too_many = [f"k-{i}" for i in range(MAX_SEGMENT_KEYS - 1)]
    with pytest.raises(InvalidInput, match="at most 100000 keys") as refused:
        c.segments.update("production", "beta", {"add_keys": too_many}, "dana")
    assert refused.value.where == "add_keys"
    with pytest.raises(InvalidInput) as long_key:
        c.segments.update("production", "beta", {"add_keys": ["ok", "x" * 257]}, "dana")
    assert long_key.value.where == "add_keys[1]"
    with pytest.raises(InvalidInput) as nested:
        c.segments.create(
            "production",
            {"key": "nested", "conditions": [{"operator": "in_segment", "values": ["beta"]}]},
            "dana",
        )
    assert nested.value.where == "conditions[0].operator"
    monkeypatch.setattr(segments_service, "MAX_ENVIRONMENT_KEYS", 3)
    with pytest.raises(InvalidInput, match="at most 3 keys in all") as environment_full:
        c.segments.create("production", {"key": "more", "keys": ["a", "b"]}, "dana")
    assert environment_full.value.where == "keys"
    with pytest.raises(Conflict, match="version is 1"):
        c.segments.update("production", "beta", {"description": "x", "version": 7}, "dana")
    shown = c.segments.segment("production", "beta")
    assert (shown.record.segment.keys, shown.record.segment.version) == (frozenset({"u-1", "u-2"}), 1)
    assert [s.record.segment.key for s in c.segments.segments("production")] == ["beta"]


def test_an_edit_that_changes_nothing_is_not_a_change(c: Container) -> None:
    before = c.snapshots.current.revision
    audited = c.flags.audit(limit=1)
    for body in (
        {"remove_keys": ["u-9"]},
        {"add_keys": ["u-1"]},
        {"add_keys": ["u-1"], "remove_keys": ["u-9"]},
    ):
        view = c.segments.update("production", "beta", {**body, "version": 1}, "dana")
        assert (view.record.segment.keys, view.record.segment.version) == (frozenset({"u-1", "u-2"}), 1)
        assert view.used_by == ("checkout", "search")
    assert c.segments.update("production", "beta", {"description": ""}, "dana").record.segment.version == 1
    assert c.snapshots.current.revision == before  # nothing pushed to SDKs
    assert c.flags.audit(limit=1) == audited
