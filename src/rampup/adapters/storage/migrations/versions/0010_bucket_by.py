"""Stickiness by attribute: the context attribute a flag's users are bucketed by, now and in its history.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("flag_states", "flag_history"):
        op.add_column(table, sa.Column("bucket_by", sa.String(128), nullable=False, server_default=""))


def downgrade() -> None:
    for table in ("flag_states", "flag_history"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("bucket_by")
