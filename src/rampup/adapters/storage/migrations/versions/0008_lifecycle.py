"""Flag lifecycle: kind, channels, announced status, pushed code references, archive; evaluation counts.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Timestamp = sa.DateTime(timezone=True)
Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "flag_lifecycle",
        sa.Column("flag_id", sa.Integer, sa.ForeignKey("flags.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("notify", Json, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("status_since", Timestamp, nullable=True),
        sa.Column("references", Json, nullable=False),
        sa.Column("scanned_at", Timestamp, nullable=True),
        sa.Column("archived_at", Timestamp, nullable=True),
    )
    op.create_table(
        "flag_evaluations",
        sa.Column("flag_id", sa.Integer, sa.ForeignKey("flags.id", ondelete="CASCADE"), nullable=False),
        sa.Column(
            "environment_id", sa.Integer, sa.ForeignKey("environments.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("last_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("flag_id", "environment_id", "day"),
    )


def downgrade() -> None:
    op.drop_table("flag_evaluations")
    op.drop_table("flag_lifecycle")
