"""A flag's state in each environment keeps who switched it off there (when, why, how) while it stays off, instead
of that being looked up in the audit log on every plan and tick. The kills already made are carried over from the
audit log, found as the services found them until now, so an upgraded server still refuses to turn them on.

Revision ID: 0023
Revises: 0022
"""

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)
COLUMNS = (
    ("off_at", Timestamp),
    ("off_actor", sa.String(200)),
    ("off_on_behalf_of", sa.String(200)),
    ("off_reason", sa.Text),
    ("off_how", sa.String(16)),
    ("off_source_id", sa.Integer),
)

# The tables as 0022 left them, as far as the backfill reads them.
_meta = sa.MetaData()
flags = sa.Table("flags", _meta, sa.Column("id", sa.Integer), sa.Column("key", sa.String))
environments = sa.Table("environments", _meta, sa.Column("id", sa.Integer), sa.Column("key", sa.String))
flag_states = sa.Table(
    "flag_states",
    _meta,
    sa.Column("flag_id", sa.Integer),
    sa.Column("environment_id", sa.Integer),
    sa.Column("enabled", sa.Boolean),
    *(sa.Column(name, type_) for name, type_ in COLUMNS),
)
audit = sa.Table(
    "audit",
    _meta,
    sa.Column("id", sa.BigInteger),
    sa.Column("at", Timestamp),
    sa.Column("actor", sa.String),
    sa.Column("action", sa.String),
    sa.Column("target", sa.String),
    sa.Column("environment", sa.String),
    sa.Column("before", Json),
    sa.Column("after", Json),
    sa.Column("reason", sa.Text),
    sa.Column("on_behalf_of", sa.String),
)
rollouts = sa.Table(
    "rollouts",
    _meta,
    sa.Column("id", sa.Integer),
    sa.Column("flag", sa.String),
    sa.Column("environment", sa.String),
)
transitions = sa.Table(
    "rollout_transitions",
    _meta,
    sa.Column("rollout_id", sa.Integer),
    sa.Column("at", Timestamp),
    sa.Column("to_phase", sa.String),
    sa.Column("actor", sa.String),
    sa.Column("reason", sa.Text),
)
SCHEDULED = re.compile(r"scheduled change (\d+),")  # how a scheduled change's flag entry begins its reason


def upgrade() -> None:
    for name, type_ in COLUMNS:
        op.add_column("flag_states", sa.Column(name, type_, nullable=True))
    conn = op.get_bind()
    off = (
        sa.select(flag_states.c.flag_id, flag_states.c.environment_id, flags.c.key, environments.c.key)
        .join(flags, flags.c.id == flag_states.c.flag_id)
        .join(environments, environments.c.id == flag_states.c.environment_id)
        .where(flag_states.c.enabled.is_(False))
    )
    for flag_id, environment_id, flag, environment in conn.execute(off).all():
        entry = _switched_off(conn, flag, environment)
        if entry is not None:
            where = (flag_states.c.flag_id == flag_id) & (flag_states.c.environment_id == environment_id)
            conn.execute(
                sa.update(flag_states).where(where).values(**_switch_off(conn, entry, flag, environment))
            )


def _switched_off(conn: sa.Connection, flag: str, environment: str) -> Any:
    """The entry that switched the (still off) flag off in the environment, as services/flags.py found it up to
    0022: the newest that turned it from on to off there, since the flag was made and since an environment of
    that key was last deleted or renamed away (entries from before are another environment's)."""
    renamed_or_deleted = conn.execute(
        sa.select(audit.c.id, audit.c.action, audit.c.after)
        .where(audit.c.target == f"environment:{environment}")
        .where(audit.c.action.in_(("environment.delete", "environment.update")))
    ).all()
    left = max(
        (
            e.id
            for e in renamed_or_deleted
            if e.action == "environment.delete" or (e.after or {}).get("key") != environment
        ),
        default=0,
    )
    newest_first = (
        sa.select(audit)
        .where(audit.c.target == f"flag:{flag}", audit.c.id > left)
        .order_by(audit.c.id.desc())
    )
    for e in conn.execute(newest_first):
        if e.action == "flag.create":
            return None
        turned_off = (e.before or {}).get("enabled") is True and (e.after or {}).get("enabled") is False
        if e.environment == environment and turned_off:
            return e
    return None


def _switch_off(conn: sa.Connection, e: Any, flag: str, environment: str) -> dict[str, Any]:
    how, source_id = "disable", None  # flag.update: `rampup flag set --disable`
    if e.action == "flag.scheduled":
        found = SCHEDULED.match(e.reason)
        how, source_id = "scheduled", int(found.group(1)) if found else None
    elif e.action == "flag.kill":
        how, source_id = "kill", None
        # A rollout's disable writes its flag entry with the transition's time, actor and reason.
        disabled = conn.execute(
            sa.select(transitions.c.rollout_id, transitions.c.at)
            .join(rollouts, rollouts.c.id == transitions.c.rollout_id)
            .where(rollouts.c.flag == flag, rollouts.c.environment == environment)
            .where(transitions.c.to_phase == "disabled", transitions.c.actor == e.actor)
            .where(transitions.c.reason == e.reason)
        ).all()
        by = next((t.rollout_id for t in disabled if _utc(t.at) == _utc(e.at)), None)
        if by is not None:
            how, source_id = "rollout", by
    return {
        "off_at": e.at,
        "off_actor": e.actor,
        "off_on_behalf_of": e.on_behalf_of,
        "off_reason": e.reason,
        "off_how": how,
        "off_source_id": source_id,
    }


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def downgrade() -> None:
    # The audit log still holds every kill: 0022's services find them there again.
    with op.batch_alter_table("flag_states") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
