"""Decisions: each transition's kind; failed requests per user and day (failures clustered by user).

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rollout_transitions", sa.Column("kind", sa.String(32), nullable=True))
    op.add_column("unit_days", sa.Column("failures", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    op.drop_column("unit_days", "failures")
    op.drop_column("rollout_transitions", "kind")
