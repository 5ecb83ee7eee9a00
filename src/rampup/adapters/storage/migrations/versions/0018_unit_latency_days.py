"""Each user's latency values per day and octave, so percentiles are compared with control per user.

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unit_latency_days",
        sa.Column("environment_id", sa.Integer, nullable=False),
        sa.Column("flag", sa.String(128), nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("targeting_key", sa.String(256), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint(
            "environment_id", "flag", "metric", "day", "variant", "targeting_key", "level"
        ),
    )


def downgrade() -> None:
    op.drop_table("unit_latency_days")
