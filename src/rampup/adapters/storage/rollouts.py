"""Rollouts and their transitions: the controller's half of a transaction."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from rampup.adapters.storage._values import jsonable, utc
from rampup.adapters.storage.tables import rollout_transitions, rollouts
from rampup.core.plans import Phase, Plan, RolloutState, Signoff, Transition, TransitionKind
from rampup.core.ports import RolloutRecord

__all__ = ["SqlRollouts"]


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def state_to_json(s: RolloutState) -> dict[str, Any]:
    return {
        "phase": s.phase.value,
        "stage": s.stage,
        "entered_at": s.entered_at.isoformat() if s.entered_at else None,
        "started_at": s.started_at.isoformat() if s.started_at else None,
        "breaches": [[i, at.isoformat()] for i, at in s.breaches],
        "signoffs": [
            {"stage": x.stage, "prerequisite": x.prerequisite, "by": x.by, "at": x.at.isoformat()}
            for x in s.signoffs
        ],
        "approvals": list(s.approvals),
        "noted_timeout": s.noted_timeout,
        "noted_hold": s.noted_hold,
        "environment_hold": s.environment_hold,
        "stepped_back": s.stepped_back,
    }


def state_from_json(d: dict[str, Any]) -> RolloutState:
    return RolloutState(
        Phase(d["phase"]),
        d["stage"],
        _time(d["entered_at"]),
        _time(d["started_at"]),
        tuple((i, datetime.fromisoformat(at)) for i, at in d["breaches"]),
        tuple(
            Signoff(x["stage"], x["prerequisite"], x["by"], datetime.fromisoformat(x["at"]))
            for x in d["signoffs"]
        ),
        tuple(d["approvals"]),
        d["noted_timeout"],
        noted_hold=d.get("noted_hold", False),
        environment_hold=d.get("environment_hold", False),
        stepped_back=d.get("stepped_back", False),
    )


class SqlRollouts:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _record(self, r: Any) -> RolloutRecord:
        return RolloutRecord(
            r.id,
            r.plan,
            Plan.parse(r.plan),
            state_from_json(r.state),
            r.version,
            r.created_by,
            utc(r.created_at),
        )

    def add(
        self, plan_source: dict[str, Any], plan: Plan, state: RolloutState, actor: str, at: datetime
    ) -> int:
        return int(
            self.conn.execute(
                insert(rollouts)
                .values(
                    flag=plan.flag,
                    environment=plan.environment,
                    name=plan.name,
                    plan=plan_source,
                    phase=state.phase.value,
                    live=not state.phase.is_terminal,
                    state=state_to_json(state),
                    version=1,
                    created_by=actor,
                    created_at=at,
                    updated_at=at,
                )
                .returning(rollouts.c.id)
            ).scalar_one()
        )

    def get(self, rollout_id: int) -> RolloutRecord | None:
        r = self.conn.execute(select(rollouts).where(rollouts.c.id == rollout_id)).first()
        return None if r is None else self._record(r)

    def find(
        self,
        *,
        flag: str | None = None,
        environment: str | None = None,
        live: bool | None = None,
        limit: int = 100,
    ) -> list[RolloutRecord]:
        query = select(rollouts).order_by(rollouts.c.id.desc()).limit(limit)
        for column, value in (
            (rollouts.c.flag, flag),
            (rollouts.c.environment, environment),
            (rollouts.c.live, live),
        ):
            if value is not None:
                query = query.where(column == value)
        return [self._record(r) for r in self.conn.execute(query)]

    def live_for(self, flag: str, environment: str) -> RolloutRecord | None:
        found = self.find(flag=flag, environment=environment, live=True, limit=1)
        return found[0] if found else None

    def save(self, rollout_id: int, expected_version: int, state: RolloutState, at: datetime) -> bool:
        """Compare-and-swap on the version: False when someone else wrote first."""
        result = self.conn.execute(
            update(rollouts)
            .where(rollouts.c.id == rollout_id, rollouts.c.version == expected_version)
            .values(
                state=state_to_json(state),
                phase=state.phase.value,
                live=not state.phase.is_terminal,
                version=expected_version + 1,
                updated_at=at,
            )
        )
        return result.rowcount == 1

    def add_transitions(self, rollout_id: int, transitions: Sequence[Transition]) -> None:
        if transitions:
            self.conn.execute(
                insert(rollout_transitions),
                [
                    {
                        "rollout_id": rollout_id,
                        "at": t.at,
                        "from_phase": t.from_phase.value,
                        "to_phase": t.to_phase.value,
                        "from_stage": t.from_stage,
                        "to_stage": t.to_stage,
                        "actor": t.actor,
                        "reason": t.reason,
                        "evidence": jsonable(list(t.evidence)),
                        "on_behalf_of": t.on_behalf_of,
                        "kind": t.kind.value,
                    }
                    for t in transitions
                ],
            )

    def transitions(self, rollout_id: int) -> list[Transition]:
        query = (
            select(rollout_transitions)
            .where(rollout_transitions.c.rollout_id == rollout_id)
            .order_by(rollout_transitions.c.id)
        )
        return [
            Transition(
                utc(r.at),
                Phase(r.from_phase),
                Phase(r.to_phase),
                r.from_stage,
                r.to_stage,
                r.actor,
                r.reason,
                tuple(r.evidence),
                r.on_behalf_of,
                TransitionKind(r.kind)
                if r.kind
                else TransitionKind.of(Phase(r.from_phase), Phase(r.to_phase), r.from_stage, r.to_stage),
            )
            for r in self.conn.execute(query)
        ]
