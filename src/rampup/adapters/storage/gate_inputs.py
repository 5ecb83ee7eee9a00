"""What the gates read, from any store's telemetry port: the `GateData` a transaction's telemetry hands out."""

from collections.abc import Mapping

from rampup.core.ports import Telemetry
from rampup.core.rollups import FINE_RETENTION, Aggregate, Exceedance, UnitTotals, combine, cover

__all__ = ["TelemetryGateInputs"]


class TelemetryGateInputs:
    """Gate data from the rollups of one flag in one environment, exact to the second for recent edges; each
    span read once per tick, however many gates and windows ask."""

    def __init__(self, telemetry: Telemetry, environment_id: int, flag: str) -> None:
        self._telemetry, self._env, self._flag = telemetry, environment_id, flag
        self._units: dict[tuple[int, int], dict[str, UnitTotals]] = {}
        self._read: dict[tuple[str, str, int, int], Aggregate] = {}
        self._spread: dict[tuple[str, int, int], dict[str, dict[int, Exceedance]]] = {}

    def forget(self) -> None:
        """Drop what was read: the data may have changed (a new tick)."""
        self._units.clear()
        self._read.clear()
        self._spread.clear()

    def aggregate(self, metric: str, variant: str, since_ms: int, until_ms: int) -> Aggregate:
        key = (metric, variant, since_ms, until_ms)
        if key not in self._read:  # the lines of one gate, and a gate and its control, read the same data
            self._read[key] = self._aggregate(metric, variant, since_ms, until_ms)
        return self._read[key]

    def _aggregate(self, metric: str, variant: str, since_ms: int, until_ms: int) -> Aggregate:
        slot = "" if variant == "all" else self._flag
        until_s = until_ms // 1000 + 1  # the second in progress counts
        # Per-second aggregates cannot split the second a stage began in. A variant's numbers start at the next
        # second, so a failing stage's last moments never count against the stage rolled back to; whole-environment
        # counts (data loss: any at all) keep that second, so nothing that happened is missed.
        since_s = since_ms // 1000 if variant == "all" else -(-since_ms // 1000)
        spans = cover(since_s, until_s, until_s - FINE_RETENTION)
        rows = self._telemetry.rollup_rows(self._env, slot, metric, spans)
        return combine(r.aggregate for r in rows if r.variant == variant)

    def units(self, variant: str, since_ms: int, until_ms: int) -> UnitTotals:
        days = (since_ms // 86_400_000, until_ms // 86_400_000)
        totals = self._units.get(days)
        if totals is None:  # one query per day range and tick, however many gates and windows ask
            totals = self._units[days] = self._telemetry.unit_totals(self._env, self._flag, *days)
        return totals.get(variant, UnitTotals(0, 0, 0, 0))

    def dispersion(self, metric: str, variant: str, since_ms: int, until_ms: int) -> float:
        """Failed requests per user over the days the span touches: Σ f² / Σ f."""
        if metric != "error_rate":
            return 1.0
        u = self.units(variant, since_ms, until_ms)
        return max(1.0, u.failures_sq / u.failures) if u.failures else 1.0

    def exceedance(self, metric: str, variant: str, since_ms: int, until_ms: int) -> Mapping[int, Exceedance]:
        key = (metric, since_ms // 86_400_000, until_ms // 86_400_000)
        spread = self._spread.get(key)
        if spread is None:  # one query per metric and day range per tick, for both variants
            spread = self._spread[key] = self._telemetry.exceedance(self._env, self._flag, *key)
        return spread.get(variant, {})
