"""Scheduled changes: a flag state change made once, at a given time, by the leading worker.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "scheduled_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("flag", sa.String(128), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("change", Json, nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("notify", Json, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("finished_by", sa.String(200), nullable=True),
        sa.Column("outcome", sa.Text, nullable=False),
    )
    op.create_index("ix_scheduled_changes_status_at", "scheduled_changes", ["status", "at"])


def downgrade() -> None:
    op.drop_table("scheduled_changes")
