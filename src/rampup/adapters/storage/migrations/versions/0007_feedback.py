"""User feedback, its variants, and Sentry event references for attributing it.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("environment_id", sa.Integer, nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("targeting_key", sa.String(256), nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("scale", sa.String(32), nullable=True),
        sa.Column("comment", sa.Text, nullable=True),
        sa.Column("tags", Json, nullable=True),
        sa.Column("variants", Json, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
    )
    op.create_index("ix_feedback_environment_time", "feedback", ["environment_id", "at_ms"])
    op.create_index("ix_feedback_user", "feedback", ["targeting_key"])
    op.create_table(
        "feedback_variants",
        sa.Column("feedback_id", sa.BigInteger, nullable=False),
        sa.Column("environment_id", sa.Integer, nullable=False),
        sa.Column("flag", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("feedback_id", "flag"),
    )
    op.create_index(
        "ix_feedback_variants_flag", "feedback_variants", ["environment_id", "flag", "feedback_id"]
    )
    op.create_table(
        "event_refs",
        sa.Column("environment_id", sa.Integer, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.Column("targeting_key", sa.String(256), nullable=True),
        sa.Column("flags", Json, nullable=True),
        sa.PrimaryKeyConstraint("environment_id", "event_id"),
    )
    op.create_index("ix_event_refs_time", "event_refs", ["at_ms"])


def downgrade() -> None:
    op.drop_table("event_refs")
    op.drop_table("feedback_variants")
    op.drop_table("feedback")
