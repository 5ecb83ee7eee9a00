"""Telemetry: flag history for attribution, raw event batches, minute/hour rollups, per-user days, custom metrics.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "flag_history",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("flag_id", sa.Integer, sa.ForeignKey("flags.id", ondelete="CASCADE"), nullable=False),
        sa.Column(
            "environment_id", sa.Integer, sa.ForeignKey("environments.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("rollout_bp", sa.Integer, nullable=False),
        sa.Column("salt", sa.String(200), nullable=False),
        sa.Column("weights", Json, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_flag_history_flag", "flag_history", ["flag_id", "environment_id", "at"])
    # Flags that exist already start their history with their current state.
    op.execute(
        "INSERT INTO flag_history (flag_id, environment_id, at, enabled, rollout_bp, salt, weights, version) "
        "SELECT flag_id, environment_id, updated_at, enabled, rollout_bp, salt, weights, version "
        "FROM flag_states"
    )
    op.create_table(
        "event_batches",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("environment_id", sa.Integer, nullable=False),
        sa.Column("first_ms", sa.BigInteger, nullable=False),
        sa.Column("last_ms", sa.BigInteger, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_event_batches_environment_time", "event_batches", ["environment_id", "last_ms"])
    op.create_table(
        "rollups",
        sa.Column("environment_id", sa.Integer, nullable=False),
        sa.Column("flag", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("metric", sa.String(200), nullable=False),
        sa.Column("resolution", sa.SmallInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("period", sa.BigInteger, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.BigInteger, nullable=False),
        sa.Column("total", sa.Float, nullable=False),
        sa.Column("total_sq", sa.Float, nullable=False),
        sa.Column("last_value", sa.Float, nullable=True),
        sa.Column("last_at_ms", sa.BigInteger, nullable=True),
        sa.Column("sketch", sa.LargeBinary, nullable=True),
        sa.PrimaryKeyConstraint("environment_id", "flag", "metric", "resolution", "period", "variant"),
    )
    op.create_table(
        "unit_days",
        sa.Column("environment_id", sa.Integer, nullable=False),
        sa.Column("flag", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("targeting_key", sa.String(256), nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("engaged", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("environment_id", "flag", "day", "variant", "targeting_key"),
    )

    op.create_table(
        "metric_definitions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("definition", Json, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    for table in ("metric_definitions", "unit_days", "rollups", "event_batches", "flag_history"):
        op.drop_table(table)
