"""What the sample-ratio check can catch, as `rampup apply` prints it at the users seen and `rampup simulate` at
the traffic given: per stage with a control, the smallest loss of the treatment's users it catches."""

import json
from collections.abc import Callable
from pathlib import Path

from rampup.core.plans import SRM_ALPHA, SRM_CHECKS
from rampup.core.srm import smallest_caught
from tests.cli.test_cli import ok, rampup
from tests.support.servers import Server
from tests.support.traffic import Traffic

PLAN = """\
name: srm-power-plan
flag: srm-power
environment: production
stages:
  - {name: Early Access, percentage: 10, min_duration: 48h}
  - {name: General, percentage: 50, min_duration: 24h}
  - {name: Full, percentage: 100, min_duration: 1h}
gates:
  - {metric: error_rate, rollback: "> 5%"}
"""


def row(output: str, stage: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(f"│ {stage} ")]
    assert len(lines) == 1, output
    return lines[0]


def caught(users: int, share: float, alpha: float) -> str:
    return f"≥ {smallest_caught(users, share, alpha):.1%}"


def test_apply_prints_the_smallest_loss_the_check_catches_at_the_users_of_the_last_days(
    tmp_path: Path, make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = server_factory(make_database_url("sqlite"), manual_clock=True)
    with server.client() as c:
        r = c.post("/api/v1/flags", json={"key": "srm-power", "type": "boolean"})
        assert r.status_code == 201, r.text
        for start in (0, 1000):  # the day before yesterday users 0–1999, yesterday 1000–2999: half come back
            traffic = Traffic(c, "srm-power", users=3000)
            traffic.users = traffic.users[start : start + 2000]
            traffic.send()
            server.advance("24h")
        (tmp_path / "plan.yaml").write_text(PLAN)
        output = ok(rampup("apply", "-f", str(tmp_path / "plan.yaml"), server=server))
    assert "sample-ratio check" in output
    output = output.split("sample-ratio check")[1]
    alpha = SRM_ALPHA / 2 / SRM_CHECKS  # two stages with a control; the ratio's share of each one's level
    # Within a day: yesterday's 2,000 users; within the 48 h soak: the 3,000 distinct users of two days.
    first = row(output, "1 Early Access")
    assert "2,000 / 3,000" in first and caught(2000, 0.1, alpha) in first
    assert f"{caught(3000, 0.1, alpha)} (48 h)" in first
    second = row(output, "2 General")  # a one-day soak: yesterday's users for both
    assert "2,000 / 2,000" in second and f"{caught(2000, 0.5, alpha)} (24 h)" in second
    assert "│ 3 Full " not in output  # at 100% there is no control


def test_simulate_prints_it_at_the_traffic_given_a_3_percent_loss_out_of_reach_in_12_hours_at_5_req_s(
    tmp_path: Path,
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        PLAN.replace("min_duration: 48h", "min_duration: 12h").replace(
            "min_duration: 24h", "min_duration: 1h"
        )
    )
    output = ok(rampup("simulate", str(plan), "-n", "1", "--rate", "5")).split("sample-ratio check")[1]
    alpha = SRM_ALPHA / 2 / SRM_CHECKS
    # 5 req/s at 5 requests a user: 43,200 users in the 12 h soak.
    first = row(output, "1 Early Access")
    assert "43,200 / 43,200" in first and f"{caught(43_200, 0.1, alpha)} (12 h)" in first
    assert smallest_caught(43_200, 0.1, alpha) > 0.03
    report = json.loads(ok(rampup("simulate", str(plan), "-n", "1", "--rate", "50", "--json")))
    power = report["srm_power"]
    assert [(p["stage"], p["users_soak"]) for p in power] == [(1, 432_000), (2, 36_000)]
    assert power[0]["caught_within_the_soak"] < 0.03  # ten times the users: caught
