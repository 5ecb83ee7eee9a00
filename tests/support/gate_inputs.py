"""The rest of a `GateInputs` for the core's gate tests whose only data is each variant's aggregate."""

from rampup.core.rollups import Exceedance, UnitTotals

__all__ = ["AggregatesOnly"]


class AggregatesOnly:
    """No users counted, failures independent of one another (dispersion 1), no sketched values: a subclass
    defines `aggregate`, the data its test is about."""

    def units(self, variant: str, since_ms: int, until_ms: int) -> UnitTotals:
        return UnitTotals(0, 0, 0, 0)

    def dispersion(self, metric: str, variant: str, since_ms: int, until_ms: int) -> float:
        return 1.0

    def exceedance(self, metric: str, variant: str, since_ms: int, until_ms: int) -> dict[int, Exceedance]:
        return {}
