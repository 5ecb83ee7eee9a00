"""Summary ids: the summaries stored, so one sent again after a lost answer is not counted twice.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "summary_ids",
        sa.Column("environment_id", sa.Integer, nullable=False),
        sa.Column("summary_id", sa.String(64), nullable=False),
        sa.Column("at_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("environment_id", "summary_id"),
    )
    op.create_index("ix_summary_ids_time", "summary_ids", ["at_ms"])


def downgrade() -> None:
    op.drop_index("ix_summary_ids_time", table_name="summary_ids")
    op.drop_table("summary_ids")
