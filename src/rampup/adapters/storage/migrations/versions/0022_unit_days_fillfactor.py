"""PostgreSQL: per-user days and latency octaves leave 30 % of each page free (`fillfactor = 70`), so the worker's
merge updates a returning user's row on its own page (a HOT update: no new entry in the primary key's index, and the
old version pruned on the page without a vacuum). SQLite is unchanged.

Revision ID: 0022
Revises: 0021
"""

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

_TABLES = ("unit_days", "unit_latency_days")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"ALTER TABLE {table} SET (fillfactor = 70)")  # pages written from now on


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:
            op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
