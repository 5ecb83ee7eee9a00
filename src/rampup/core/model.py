"""Environments and audit records: the plain values the rest of the core refers to."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = ["Environment", "AuditEntry", "AuditRecord", "DEFAULT_ENVIRONMENTS"]

DEFAULT_ENVIRONMENTS = ("staging", "production")

# What an audit entry records of its target before and after the change: named fields, stored as JSON; None
# where there was nothing (before a creation, after a deletion).
AuditRecord = dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Environment:
    id: int
    key: str
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "name": self.name}


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str  # e.g. "flag.create", "flag.update", "flag.kill", "token.create"
    target: str  # e.g. "flag:workstation", "token:ab12cd34"
    environment: str | None
    before: AuditRecord
    after: AuditRecord
    reason: str
    # Whom the token (`actor`) said it acted for; recorded, never trusted instead.
    on_behalf_of: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "on_behalf_of": self.on_behalf_of,
            "action": self.action,
            "target": self.target,
            "environment": self.environment,
            "before": self.before,
            "after": self.after,
            "reason": self.reason,
        }
