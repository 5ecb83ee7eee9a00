"""Flags get tags and an owner, to find them by.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("flags", sa.Column("tags", Json, nullable=False, server_default="[]"))
    op.add_column("flags", sa.Column("owner", sa.String(200), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("flags") as batch:
        batch.drop_column("owner")
        batch.drop_column("tags")
