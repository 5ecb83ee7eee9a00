"""Defaults the command line shows in its help: here, apart from the settings, so that showing them does not load
pydantic (config.py reads them from here too)."""

__all__ = ["DEFAULT_DATABASE_URL"]

DEFAULT_DATABASE_URL = "sqlite:///rampup.db"
