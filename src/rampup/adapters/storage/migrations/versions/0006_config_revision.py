"""The configuration revision as a row bumped in commit order.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "config_revision",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    # Continues from the newest audit id, the old revision, so no running instance sees it move backwards.
    newest = op.get_bind().execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM audit")).scalar_one()
    op.bulk_insert(table, [{"id": 1, "revision": int(newest)}])


def downgrade() -> None:
    op.drop_table("config_revision")
