"""Per-user latency octaves appended by ingest and merged into unit_latency_days by the worker, as per-user days are.

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "unit_latency_parts",
        sa.Column("environment_id", sa.Integer, nullable=False),
        sa.Column("flag", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("targeting_key", sa.String(256), nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_index(
        "ix_unit_latency_parts_flag_day", "unit_latency_parts", ["environment_id", "flag", "metric", "day"]
    )


def downgrade() -> None:
    # Parts not yet merged are merged first, so going back loses nothing.
    op.execute(
        "INSERT INTO unit_latency_days (environment_id, flag, metric, day, variant, targeting_key, level, count) "
        "SELECT environment_id, flag, metric, day, variant, targeting_key, level, sum(count) FROM unit_latency_parts "
        "WHERE true GROUP BY environment_id, flag, metric, day, variant, targeting_key, level "
        "ON CONFLICT (environment_id, flag, metric, day, variant, targeting_key, level) DO UPDATE SET "
        "count = unit_latency_days.count + excluded.count"
    )
    op.drop_index("ix_unit_latency_parts_flag_day", table_name="unit_latency_parts")
    op.drop_table("unit_latency_parts")
