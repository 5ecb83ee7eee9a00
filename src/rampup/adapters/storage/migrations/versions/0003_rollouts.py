"""Rollouts, their transitions, the outbox, and the leader lease.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("flag", sa.String(128), nullable=False),
        sa.Column("environment", sa.String(128), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("plan", Json, nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("live", sa.Boolean, nullable=False),
        sa.Column("state", Json, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
    )
    op.create_index(
        "ux_rollouts_live",
        "rollouts",
        ["flag", "environment"],
        unique=True,
        sqlite_where=sa.text("live"),
        postgresql_where=sa.text("live"),
    )
    op.create_table(
        "rollout_transitions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("from_phase", sa.String(32), nullable=False),
        sa.Column("to_phase", sa.String(32), nullable=False),
        sa.Column("from_stage", sa.Integer, nullable=False),
        sa.Column("to_stage", sa.Integer, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", Json, nullable=False),
    )
    op.create_index("ix_rollout_transitions_rollout", "rollout_transitions", ["rollout_id", "id"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("destination", sa.String(500), nullable=False),
        sa.Column("payload", Json, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", Timestamp, nullable=False),
        sa.Column("delivered_at", Timestamp, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
    )
    op.create_index("ix_outbox_queue", "outbox", ["destination", "delivered_at", "id"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
    )


def downgrade() -> None:
    for table in ("leases", "outbox", "rollout_transitions", "rollouts"):
        op.drop_table(table)
