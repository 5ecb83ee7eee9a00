"""Channels, alert rules and alerts, report schedules.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("min_severity", sa.String(16), nullable=False),
        sa.Column("config", Json, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rule", Json, nullable=False),
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id", ondelete="CASCADE"), nullable=True),
        sa.Column("breaching_since", Timestamp, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rule_id", sa.Integer, sa.ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("resolved_at", Timestamp, nullable=True),
        sa.Column("last_notified_at", Timestamp, nullable=False),
    )
    op.create_index("ix_alerts_rule_state", "alerts", ["rule_id", "state"])
    op.create_table(
        "report_schedules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("schedule", Json, nullable=False),
        sa.Column("last_period", sa.String(32), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
    )


def downgrade() -> None:
    for table in ("report_schedules", "alerts", "alert_rules", "channels"):
        op.drop_table(table)
