"""Per-user days appended by ingest and merged into unit_days by the worker, instead of upserted per batch.

Revision ID: 0019
Revises: 0018
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unit_day_parts",
        sa.Column("environment_id", sa.Integer, nullable=False),
        sa.Column("flag", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("targeting_key", sa.String(256), nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("engaged", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
    )
    op.create_index("ix_unit_day_parts_flag_day", "unit_day_parts", ["environment_id", "flag", "day"])


def downgrade() -> None:
    # Parts not yet merged are merged first, so going back loses nothing.
    op.execute(
        "INSERT INTO unit_days (environment_id, flag, variant, day, targeting_key, events, engaged, failures) "
        "SELECT environment_id, flag, variant, day, targeting_key, sum(events), sum(engaged), sum(failures) "
        "FROM unit_day_parts WHERE true GROUP BY environment_id, flag, day, variant, targeting_key "
        "ON CONFLICT (environment_id, flag, day, variant, targeting_key) DO UPDATE SET "
        "events = unit_days.events + excluded.events, engaged = unit_days.engaged + excluded.engaged, "
        "failures = unit_days.failures + excluded.failures"
    )
    op.drop_index("ix_unit_day_parts_flag_day", table_name="unit_day_parts")
    op.drop_table("unit_day_parts")
