"""Per-user days count the user's exposure events of the flag too (`exposures`), so the users a flag served whose
own telemetry never arrived (every event an exposure) can be told apart. Rows and packs written before count 0.

Revision ID: 0024
Revises: 0023
"""

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

_TABLES = ("unit_days", "unit_day_packs")


def upgrade() -> None:
    for table in _TABLES:  # a constant default: PostgreSQL adds it without rewriting the table
        op.add_column(table, sa.Column("exposures", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table in reversed(_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("exposures")
