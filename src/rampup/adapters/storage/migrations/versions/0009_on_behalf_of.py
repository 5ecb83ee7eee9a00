"""Audit entries and rollout transitions record whom a token acted for ("on behalf of"), beside the token.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("audit", "rollout_transitions"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("on_behalf_of", sa.String(200), nullable=True))


def downgrade() -> None:
    for table in ("audit", "rollout_transitions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("on_behalf_of")
