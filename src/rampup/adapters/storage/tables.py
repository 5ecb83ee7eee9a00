"""Table definitions: the only file that names tables and columns."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB

__all__ = ["metadata", "environments", "flags", "flag_states", "tokens", "audit"]

metadata = MetaData()

Json = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")
Timestamp = DateTime(timezone=True)

environments = Table(
    "environments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(128), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

flags = Table(
    "flags",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(128), nullable=False, unique=True),
    Column("type", String(16), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("variants", Json, nullable=False),
    Column("off_variant", String(128), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

flag_states = Table(
    "flag_states",
    metadata,
    Column("flag_id", Integer, ForeignKey("flags.id", ondelete="CASCADE"), primary_key=True),
    Column("environment_id", Integer, ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("rollout_bp", Integer, nullable=False),
    Column("rules", Json, nullable=False),
    Column("salt", String(200), nullable=False),
    Column("weights", Json, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("environment_id", Integer, ForeignKey("environments.id", ondelete="CASCADE"), nullable=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp, nullable=True),
)

# Append-only. Its highest id is also the configuration's revision: every instance polls it to know
# when flags or tokens changed, so no instance serves a config the others have moved past for long.
audit = Table(
    "audit",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(300), nullable=False),
    Column("environment", String(128), nullable=True),
    Column("before", Json, nullable=True),
    Column("after", Json, nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Index("ix_audit_target", "target", "id"),
)
