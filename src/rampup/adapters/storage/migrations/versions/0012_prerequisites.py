"""Prerequisites: the flags that must be on for a user before a flag is evaluated for them.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column("flag_states", sa.Column("prerequisites", Json, nullable=False, server_default="[]"))


def downgrade() -> None:
    with op.batch_alter_table("flag_states") as batch:
        batch.drop_column("prerequisites")
