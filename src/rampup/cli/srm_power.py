"""The sample-ratio check's power per stage, as `rampup apply`, `rampup rollout status` and `rampup simulate`
print it."""

from datetime import timedelta
from typing import Any

from rich.table import Table

from rampup.core.durations import format_duration

__all__ = ["srm_table"]


def _loss(share: float | None) -> str:
    return f"≥ {share:.1%}" if share is not None else "[red]none[/] (too few users)"


def srm_table(power: list[dict[str, Any]], traffic: str) -> Table:
    """Per stage with a control: the users the ratio check counts and the smallest share of the treatment's users
    lost altogether (their exposures too) it typically catches, within its first counted day and its soak. A
    treatment whose telemetry alone is lost is the missing-telemetry check's, far more sensitive (statistics.md)."""
    table = Table(
        "stage",
        "share",
        "users: a day / the soak",
        "caught within a day",
        "within the soak",
        title="sample-ratio check: the smallest loss of the treatment's users (exposures too) it catches, at "
        + traffic,
        caption="users are counted per whole day, from the stage's first midnight; "
        "a stage that begins later in the day counts up to a day less in its soak",
    )
    for p in power:
        soak = format_duration(timedelta(seconds=p["soak_s"]), "short")
        table.add_row(
            f"{p['stage']} {p['name']}",
            f"{p['share']:.0%}",
            f"{p['users_day']:,.0f} / {p['users_soak']:,.0f}",
            _loss(p["caught_within_a_day"]),
            f"{_loss(p['caught_within_the_soak'])} ({soak})",
        )
    return table
