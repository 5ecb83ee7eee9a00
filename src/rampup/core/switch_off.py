"""A flag's kill switch, pulled in one environment: who switched the flag off there, when, why and how. Stored
with the flag's state in that environment while the flag stays off, so a rollout, a plan or a scheduled change
made before it does not turn the flag on again; a person's enable clears it."""

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

__all__ = ["OffHow", "SwitchOff"]


class OffHow(StrEnum):
    KILL = "kill"  # `rampup flag kill`, the API's …/kill, the dashboard's kill switch
    DISABLE = "disable"  # `rampup flag set --disable`: a state change with `enabled: false`
    ROLLOUT = "rollout"  # a rollout's disable, by a person's command or a `disable` gate
    SCHEDULED = "scheduled"  # a scheduled change that turned the flag off


@dataclass(frozen=True, slots=True)
class SwitchOff:
    at: datetime
    actor: str  # the token's name
    on_behalf_of: str | None  # whom the token said it acted for
    reason: str
    how: OffHow
    source_id: int | None = None  # the rollout or the scheduled change that did it
