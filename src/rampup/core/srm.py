"""How small a sample-ratio mismatch the check can catch: a power calculation at the traffic seen (or given).

The check (`plans.sample_ratio`) pauses once its anytime-valid evidence against "each user is in the
treatment with the stage's share p" reaches log(1/α). A treatment that loses a share ℓ of its users'
telemetry shows a share q = p (1 − ℓ) / (1 − p ℓ). Along the expected path (n users, n q of them in the
treatment) the evidence grows with n; the smallest ℓ whose evidence reaches the level by n users is what the
check typically catches by then (the median path: half the time sooner, half later). Against chance the
test is ℓ √(n p (1 − p)) standard deviations: the number of users, not the test, sets the limit.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rampup.core import sequential
from rampup.core.bucketing import BUCKETS

__all__ = ["DAY_S", "SrmPower", "smallest_caught", "srm_power"]

DAY_S = 86_400.0  # users are kept per day: the check counts the whole days inside a stage


@dataclass(frozen=True, slots=True)
class SrmPower:
    """One stage with a control: the users the check counts and the smallest loss of the treatment's users
    it catches (a share; math.inf: none, not even all of them) within the first counted day and the soak."""

    stage: int
    name: str
    share: float
    soak_s: float
    users_day: float
    users_soak: float
    caught_day: float
    caught_soak: float

    def to_dict(self) -> dict[str, Any]:
        def share(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "stage": self.stage,
            "name": self.name,
            "share": self.share,
            "soak_s": self.soak_s,
            "users_day": self.users_day,
            "users_soak": self.users_soak,
            "caught_within_a_day": share(self.caught_day),
            "caught_within_the_soak": share(self.caught_soak),
        }


def smallest_caught(users: float, share: float, alpha: float) -> float:
    """The smallest share of the treatment's users lost that the check catches, on the expected path, by
    the time it has counted `users` (both variants); math.inf when not even losing them all is caught."""
    level = math.log(1 / alpha)

    def caught(loss: float) -> bool:
        seen = share * (1 - loss) / (1 - share * loss)
        return sequential.share_evidence(users, users * seen, share) >= level

    if users <= 0 or not caught(1 - 1e-9):
        return math.inf
    low, high = 0.0, 1 - 1e-9
    for _ in range(40):
        middle = (low + high) / 2
        low, high = (low, middle) if caught(middle) else (middle, high)
    return high


def srm_power(
    stages: Sequence[tuple[str, int, float]], users_in: Callable[[float], float], alpha: float
) -> list[SrmPower]:
    """Per stage with a control (name, percentage in basis points, soak in seconds): what the check catches,
    given the users it would count over a span of seconds (`users_in`)."""
    out = []
    for number, (name, percentage_bp, soak_s) in enumerate(stages, start=1):
        share = percentage_bp / BUCKETS
        if not 0 < share < 1:
            continue  # no control to compare with (or no treatment)
        day, soak = users_in(min(DAY_S, soak_s)), users_in(soak_s)
        out.append(
            SrmPower(
                number,
                name,
                share,
                soak_s,
                day,
                soak,
                smallest_caught(day, share, alpha),
                smallest_caught(soak, share, alpha),
            )
        )
    return out
