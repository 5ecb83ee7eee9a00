"""SQL storage on SQLite (default) or PostgreSQL, through SQLAlchemy Core."""

from rampup.adapters.storage.engine import make_engine, migrate, taking_turns
from rampup.adapters.storage.store import SqlStore

__all__ = ["make_engine", "migrate", "taking_turns", "SqlStore"]
