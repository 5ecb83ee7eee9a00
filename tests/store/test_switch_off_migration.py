"""0023: a flag's state keeps who switched it off; an upgrade carries over the kills the audit log holds, so an
upgraded server still refuses to turn them on."""

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, insert

from rampup.adapters.storage import make_engine
from rampup.adapters.storage.engine import MIGRATIONS
from rampup.adapters.storage.tables import (
    audit,
    environments,
    flag_states,
    flags,
    rollout_transitions,
    rollouts,
)
from rampup.bootstrap import build_container
from rampup.config import Settings
from rampup.core.plans import Phase, Plan
from rampup.core.switch_off import OffHow, SwitchOff
from rampup.errors import Conflict


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_upgrade_keeps_the_kills_the_audit_log_holds_pulled(
    backend: str, make_empty_database_url: Callable[[str], str]
) -> None:
    """0023 keeps who switched a flag off with its state; the kills made before it are carried over from the
    audit log, so an upgraded server still refuses to turn them on and still names who pulled them."""
    url = make_empty_database_url(backend)
    engine = make_engine(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0022")
            _as_0022_left_them(conn)
    finally:
        engine.dispose()

    c = build_container(Settings(database_url=url, admin_token="t0ken"), clock=lambda: LATER)
    try:
        killed = SwitchOff(KILLED_AT, "oncall", None, "error rate 0.8%", OffHow.KILL)
        scheduled = SwitchOff(KILLED_AT, "dana", None, "scheduled change 4, made by w1", OffHow.SCHEDULED, 4)
        assert {f.record.definition.key: dict(f.switched_off) for f in c.flags.flags()} == {
            "killed": {"production": killed},
            "scheduled-off": {"production": scheduled},
            "back-on": {},
            "never-on": {},
            "rollout-off": {"production": replace(killed, how=OffHow.ROLLOUT, source_id=7)},
        }
        with pytest.raises(Conflict) as refused:
            c.rollouts.create(_plan("killed"), Plan.parse(_plan("killed")), "deploy-bot", True)
        assert refused.value.message.startswith(
            "flag 'killed' was switched off in 'production' at 2026-03-02 10:00:00 UTC by oncall (error rate 0.8%)"
        )
        started = c.rollouts.create(_plan("never-on"), Plan.parse(_plan("never-on")), "deploy-bot", True)
        assert c.rollouts.rollout(started).record.state.phase is Phase.RUNNING
    finally:
        c.close()


KILLED_AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LATER = KILLED_AT + timedelta(hours=1)


def _plan(flag: str) -> dict[str, Any]:
    return {
        "name": f"{flag}-ramp",
        "flag": flag,
        "environment": "production",
        "stages": [{"name": "All", "percentage": 100, "min_duration": "1h"}],
    }


def _as_0022_left_them(conn: Connection) -> None:
    """Five flags in production, their states and their audit entries as 0022's services wrote them."""
    on, off = {"enabled": True}, {"enabled": False}
    at = KILLED_AT - timedelta(hours=1)
    conn.execute(insert(environments).values(id=1, key="production", name="Production", created_at=at))
    history = {  # per flag: its entries (action, actor, before, after, reason) and whether it is on now
        "killed": (
            [("flag.update", "dana", off, on, ""), ("flag.kill", "oncall", on, off, "error rate 0.8%")],
            False,
        ),
        "scheduled-off": (
            [
                ("flag.update", "dana", off, on, ""),
                ("flag.scheduled", "dana", on, off, "scheduled change 4, made by w1"),
            ],
            False,
        ),
        "back-on": (
            [
                ("flag.update", "dana", off, on, ""),
                ("flag.kill", "oncall", on, off, ""),
                ("flag.update", "dana", off, on, ""),
            ],
            True,
        ),
        "never-on": ([("flag.kill", "oncall", off, off, "")], False),
        "rollout-off": (  # its rollout's disable, with the transition below
            [("flag.update", "dana", off, on, ""), ("flag.kill", "oncall", on, off, "error rate 0.8%")],
            False,
        ),
    }
    for flag_id, (key, (entries, enabled)) in enumerate(history.items(), start=1):
        conn.execute(
            insert(flags).values(
                id=flag_id,
                key=key,
                type="boolean",
                variants=[{"name": "on", "value": True}, {"name": "off", "value": False}],
                off_variant="off",
                created_at=at,
                updated_at=at,
            )
        )
        state = {"rollout_bp": 0, "rules": [], "salt": key, "weights": [], "version": 1, "updated_at": at}
        conn.execute(insert(flag_states).values(flag_id=flag_id, environment_id=1, enabled=enabled, **state))
        entry = {"target": f"flag:{key}", "environment": "production", "at": KILLED_AT}
        conn.execute(
            insert(audit).values(actor="dana", action="flag.create", target=f"flag:{key}", at=at, reason="")
        )
        for action, actor, before, after, reason in entries:
            conn.execute(
                insert(audit).values(
                    actor=actor, action=action, before=before, after=after, reason=reason, **entry
                )
            )
    rollout = {
        "name": "ramp",
        "plan": {},
        "state": {},
        "version": 2,
        "created_by": "dana",
        "updated_at": KILLED_AT,
    }
    conn.execute(
        insert(rollouts).values(
            id=7,
            flag="rollout-off",
            environment="production",
            phase="disabled",
            live=False,
            created_at=at,
            **rollout,
        )
    )
    transition = {"from_stage": 1, "to_stage": 1, "evidence": [], "kind": "disabled"}
    conn.execute(
        insert(rollout_transitions).values(
            rollout_id=7,
            at=KILLED_AT,
            from_phase="running",
            to_phase="disabled",
            actor="oncall",
            reason="error rate 0.8%",
            **transition,
        )
    )
