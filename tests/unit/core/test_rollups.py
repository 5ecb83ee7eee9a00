"""Folding observations that stand for many (a Sentry sessions aggregate): counted as many, at the cost of one."""

from rampup.core.attribution import FlagTimeline
from rampup.core.flags import FlagDefinition, FlagState
from rampup.core.rollups import ALL_VARIANT, HOUR, SECOND, RollupKey, fold
from rampup.core.telemetry import ALL_USERS, Kind, Observation

FLAG = FlagDefinition.parse("workstation")
TIMELINES = {"workstation": FlagTimeline(FLAG, [0], [FlagState(enabled=True, rollout_bp=10_000, salt="ws")])}


def test_an_observation_with_a_count_folds_as_that_many() -> None:
    many = [
        Observation(Kind.SESSION, 7_000, "u1", {"workstation": True}, failed=False, count=10**9),
        Observation(Kind.SESSION, 7_500, "u1", {"workstation": True}, failed=True, count=3),
        Observation(Kind.SESSION, 7_900, "u1", {"workstation": True}, failed=True),
    ]
    folded = fold(many, TIMELINES)
    for resolution in (SECOND, HOUR):
        everyone = folded.rollups[
            RollupKey(ALL_USERS, ALL_VARIANT, "error_rate", resolution, 7 - 7 % resolution)
        ]
        assert (everyone.count, everyone.failures) == (10**9 + 4, 4)
    (units,) = folded.units.values()
    assert units == [10**9 + 4, 0, 4]  # events, engaged, failures of the one user
