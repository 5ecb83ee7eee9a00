"""Segments on every store: their keys as a set (only the difference written), counts without the keys, a
unique key per environment, and gone with their environment."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from rampup.core.ports import Store
from rampup.core.segments import Segment
from rampup.core.targeting import Condition
from rampup.errors import Conflict

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
GERMANS = Condition.parse({"attribute": "country", "operator": "in", "values": ["DE", "AT"]}, "c")


def test_a_segments_keys_change_by_difference_and_count_without_being_read(store: Store) -> None:
    many = frozenset(f"user-{i}" for i in range(2_500))
    with store.transaction() as tx:
        production = tx.environments.add("production", "Production", AT)
        staging = tx.environments.add("staging", "Staging", AT)
        beta = tx.segments.add(production.id, Segment("beta", "testers", (GERMANS,), many), AT)
        tx.segments.add(staging.id, Segment("beta"), AT)
        tx.segments.add(production.id, Segment("alpha", keys=frozenset({"a"})), AT)
    with store.transaction() as tx:
        before = tx.segments.get(production.id, "beta", for_update=True)
        assert before is not None and before.segment == beta.segment and before.key_count == 2_500
        changed = replace(before.segment, keys=(many - {"user-0", "user-1"}) | {"new-1"}, version=2)
        tx.segments.update(before, changed, AT + timedelta(minutes=1))
    with store.read() as tx:
        after = tx.segments.get(production.id, "beta")
        assert after is not None and after.segment == changed and after.key_count == 2_499
        assert (after.created_at, after.updated_at) == (AT, AT + timedelta(minutes=1))
        listed = tx.segments.all(production.id, keys=False)
        assert [(r.segment.key, r.key_count, r.segment.keys) for r in listed] == [
            ("alpha", 1, frozenset()),
            ("beta", 2_499, frozenset()),
        ]
        assert listed[1].segment.conditions == (GERMANS,)
        everywhere = tx.segments.all()
        assert [(r.environment_id, r.segment.key) for r in everywhere] == [
            (production.id, "alpha"),
            (production.id, "beta"),
            (staging.id, "beta"),
        ]
        assert everywhere[1].segment.keys == changed.keys


def test_a_segment_key_is_unique_per_environment_and_goes_with_it(store: Store) -> None:
    with store.transaction() as tx:
        production = tx.environments.add("production", "Production", AT)
        tx.segments.add(production.id, Segment("beta", keys=frozenset({"u-1"})), AT)
    with pytest.raises(Conflict), store.transaction() as tx:
        tx.segments.add(production.id, Segment("beta"), AT)
    with store.transaction() as tx:
        doomed = tx.segments.add(production.id, Segment("doomed", keys=frozenset({"u-2"})), AT)
        tx.segments.delete(doomed.id)
    with store.read() as tx:
        assert [r.segment.key for r in tx.segments.all()] == ["beta"]
    with store.transaction() as tx:
        tx.environments.delete(production.id)
    with store.read() as tx:
        assert tx.segments.all() == []
