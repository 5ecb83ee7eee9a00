"""Raw event batches carry their day; on PostgreSQL the table is partitioned by it, so retention drops whole days.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

DAY_MS = 86_400_000
COLUMNS = "id, environment_id, day, first_ms, last_ms, events, body"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        op.add_column("event_batches", sa.Column("day", sa.Integer, nullable=False, server_default="0"))
        op.execute(f"UPDATE event_batches SET day = last_ms / {DAY_MS}")
        return
    op.execute("ALTER TABLE event_batches RENAME TO event_batches_unpartitioned")
    op.execute("ALTER INDEX ix_event_batches_environment_time RENAME TO ix_event_batches_unpartitioned_time")
    op.execute(
        "CREATE TABLE event_batches (id BIGINT NOT NULL DEFAULT nextval('event_batches_id_seq'), "
        "environment_id INTEGER NOT NULL, day INTEGER NOT NULL, first_ms BIGINT NOT NULL, last_ms BIGINT NOT NULL, "
        "events INTEGER NOT NULL, body BYTEA NOT NULL, PRIMARY KEY (day, id)) PARTITION BY RANGE (day)"
    )
    op.execute("ALTER SEQUENCE event_batches_id_seq OWNED BY event_batches.id")
    op.execute("CREATE INDEX ix_event_batches_environment_time ON event_batches (environment_id, last_ms)")
    # A batch stored before this spans any days: it goes with its last event's day, so dropping a day never
    # drops an event newer than that day.
    days = op.get_bind().exec_driver_sql(
        f"SELECT DISTINCT last_ms / {DAY_MS} FROM event_batches_unpartitioned"
    )
    for (day,) in days.all():
        name = f"event_batches_d{day}" if day >= 0 else f"event_batches_m{-day}"
        op.execute(f"CREATE TABLE {name} PARTITION OF event_batches FOR VALUES FROM ({day}) TO ({day + 1})")
    op.execute(
        f"INSERT INTO event_batches ({COLUMNS}) SELECT id, environment_id, last_ms / {DAY_MS}, first_ms, last_ms, "
        "events, body FROM event_batches_unpartitioned"
    )
    op.execute("DROP TABLE event_batches_unpartitioned")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table("event_batches") as batch:
            batch.drop_column("day")
        return
    op.execute("ALTER TABLE event_batches RENAME TO event_batches_partitioned")
    op.execute("ALTER INDEX ix_event_batches_environment_time RENAME TO ix_event_batches_partitioned_time")
    op.execute(
        "CREATE TABLE event_batches (id BIGINT NOT NULL DEFAULT nextval('event_batches_id_seq') PRIMARY KEY, "
        "environment_id INTEGER NOT NULL, first_ms BIGINT NOT NULL, last_ms BIGINT NOT NULL, "
        "events INTEGER NOT NULL, body BYTEA NOT NULL)"
    )
    op.execute("ALTER SEQUENCE event_batches_id_seq OWNED BY event_batches.id")
    op.execute("CREATE INDEX ix_event_batches_environment_time ON event_batches (environment_id, last_ms)")
    op.execute(
        "INSERT INTO event_batches (id, environment_id, first_ms, last_ms, events, body) "
        "SELECT id, environment_id, first_ms, last_ms, events, body FROM event_batches_partitioned"
    )
    op.execute("DROP TABLE event_batches_partitioned")  # its partitions go with it
