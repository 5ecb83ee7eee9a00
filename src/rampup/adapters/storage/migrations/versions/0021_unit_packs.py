"""Per-user days and latency octaves appended as packs (a batch's users with the same counts, their keys as one JSON
array) instead of a row per user: a batch appends a handful of rows, and the merge needs no sort.

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

_UNIT_COUNTS = ("events", "engaged", "failures")


def upgrade() -> None:
    op.create_table(
        "unit_day_packs",
        sa.Column("environment_id", sa.Integer, nullable=False),
        sa.Column("flag", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        *(sa.Column(c, sa.Integer, nullable=False) for c in _UNIT_COUNTS),
        sa.Column("users", sa.Integer, nullable=False),
        sa.Column("keys", sa.Text, nullable=False),
    )
    op.create_index("ix_unit_day_packs_flag_day", "unit_day_packs", ["environment_id", "flag", "day"])
    op.create_table(
        "unit_latency_packs",
        sa.Column("environment_id", sa.Integer, nullable=False),
        sa.Column("flag", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("metric", sa.String(128), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("users", sa.Integer, nullable=False),
        sa.Column("keys", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_unit_latency_packs_flag_day", "unit_latency_packs", ["environment_id", "flag", "metric", "day"]
    )
    # Parts not yet merged are merged now, so the upgrade loses nothing.
    _merge(
        "unit_days",
        "unit_day_parts",
        "environment_id, flag, day, variant, targeting_key",
        _UNIT_COUNTS,
    )
    _merge(
        "unit_latency_days",
        "unit_latency_parts",
        "environment_id, flag, metric, day, variant, targeting_key, level",
        ("count",),
    )
    op.drop_index("ix_unit_day_parts_flag_day", table_name="unit_day_parts")
    op.drop_table("unit_day_parts")
    op.drop_index("ix_unit_latency_parts_flag_day", table_name="unit_latency_parts")
    op.drop_table("unit_latency_parts")


def downgrade() -> None:
    op.create_table(
        "unit_day_parts",
        sa.Column("environment_id", sa.Integer, nullable=False),
        sa.Column("flag", sa.String(128), nullable=False),
        sa.Column("variant", sa.String(128), nullable=False),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("targeting_key", sa.String(256), nullable=False),
        *(sa.Column(c, sa.Integer, nullable=False) for c in _UNIT_COUNTS),
    )
    op.create_index("ix_unit_day_parts_flag_day", "unit_day_parts", ["environment_id", "flag", "day"])
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
    # Packs not yet merged are merged first, so going back loses nothing.
    unpacked = (
        "(SELECT p.*, k.value AS targeting_key FROM {packs} p, json_each(p.keys) k WHERE true)"
        if op.get_bind().dialect.name == "sqlite"
        else "(SELECT p.*, k AS targeting_key FROM {packs} p, json_array_elements_text(p.keys::json) k)"
    )
    _merge(
        "unit_days",
        unpacked.format(packs="unit_day_packs") + " packs",
        "environment_id, flag, day, variant, targeting_key",
        _UNIT_COUNTS,
    )
    _merge(
        "unit_latency_days",
        unpacked.format(packs="unit_latency_packs") + " packs",
        "environment_id, flag, metric, day, variant, targeting_key, level",
        ("count",),
    )
    op.drop_index("ix_unit_day_packs_flag_day", table_name="unit_day_packs")
    op.drop_table("unit_day_packs")
    op.drop_index("ix_unit_latency_packs_flag_day", table_name="unit_latency_packs")
    op.drop_table("unit_latency_packs")


def _merge(merged: str, source: str, key: str, counts: tuple[str, ...]) -> None:
    """Sum `source`'s rows per `key` (`merged`'s primary key) into `merged`."""
    summed = ", ".join(f"sum({c})" for c in counts)
    added = ", ".join(f"{c} = {merged}.{c} + excluded.{c}" for c in counts)
    op.execute(
        f"INSERT INTO {merged} ({key}, {', '.join(counts)}) SELECT {key}, {summed} FROM {source} WHERE true "
        f"GROUP BY {key} ON CONFLICT ({key}) DO UPDATE SET {added}"
    )
