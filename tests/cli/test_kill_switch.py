"""A kill switch stays pulled until a person puts it back, driven as on-call drives it: `rampup` commands against
a real server on a manual clock, and what users are served over OFREP."""

import json
import uuid
from pathlib import Path
from typing import Any

from tests.cli.test_cli import ok, one_line_error, rampup
from tests.support.servers import Server
from tests.support.tokens import new_token

PLAN = """\
name: {flag}-ramp
flag: {flag}
environment: production
stages:
  - {{name: Early, percentage: 10, min_duration: 1h, prerequisites: ["Support briefed"]}}
  - {{name: All, percentage: 100, min_duration: 1h}}
gates:
  - {{metric: error_rate, target: "< 0.1%", rollback: "> 0.5%"}}
"""


def staff_variant(server: Server, sdk: str, flag: str) -> str:
    """What a staff member (the flag's rule: e-mail at example.com) is served."""
    context = {"targetingKey": "dana", "email": "dana@example.com"}
    with server.client(sdk) as c:
        r = c.post(f"/ofrep/v1/evaluate/flags/{flag}", json={"context": context})
    assert r.status_code == 200, r.text
    return str(r.json()["variant"])


def switched_off(server: Server, flag: str) -> dict[str, Any] | None:
    """The flag's pulled kill switch in production, as the API shows it (but when)."""
    with server.client() as c:
        off = c.get(f"/api/v1/flags/{flag}/environments/production").json()["switched_off"]
    return None if off is None else {k: v for k, v in off.items() if k != "at"}


def rollouts_of(server: Server, flag: str) -> list[dict[str, Any]]:
    with server.client() as c:
        return list(c.get("/api/v1/rollouts", params={"flag": flag}).json())


def test_a_killed_flag_stays_off_through_its_rollout_and_a_new_plan_until_a_person_turns_it_on(
    shared_manual_server: Server, tmp_path: Path
) -> None:
    server, flag = shared_manual_server, f"ks-{uuid.uuid4().hex[:8]}"
    oncall, sdk = new_token(server, "write", f"oncall-{flag}"), new_token(server, "sdk", f"web-{flag}")
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(flag=flag))
    ok(rampup("flag", "create", flag, server=server))
    staff_rule = ["--rule", "email ends_with @example.com -> on"]
    ok(rampup("flag", "set", flag, "--env", "production", *staff_rule, server=server))

    # Started: 0% while the sign-off is pending, the staff rule already serves the new variant.
    rollout = json.loads(ok(rampup("apply", "-f", str(plan), "--json", server=server)))
    assert rollout["state"] == "awaiting_approval" and staff_variant(server, sdk, flag) == "on"

    ok(
        rampup(
            "flag",
            "kill",
            flag,
            "--env",
            "production",
            "--reason",
            "error rate 0.8%",
            server=server,
            token=oncall,
        )
    )
    assert staff_variant(server, sdk, flag) == "off"
    server.advance("1s")  # the controller's tick ends the rollout: the kill switch came from outside it
    status = json.loads(ok(rampup("rollout", "status", str(rollout["id"]), "--json", server=server)))
    assert status["state"] == "disabled"
    assert "was switched off in 'production'" in status["timeline"][-1]["reason"]
    signoff = rampup(
        "rollout", "signoff", str(rollout["id"]), "Support briefed", "--by", "dana", server=server
    )
    assert "the rollout is disabled" in one_line_error(signoff)
    assert staff_variant(server, sdk, flag) == "off"

    # A new plan is refused, names who killed it, when and why, and the command that turns it back on.
    error = one_line_error(rampup("apply", "-f", str(plan), server=server))
    assert f"flag '{flag}' was switched off in 'production' at " in error
    assert f"by oncall-{flag} (error rate 0.8%): a rollout does not turn it back on" in error
    way_back = f"rampup flag set {flag} --env production --enable --rollout 0"
    assert error.endswith(way_back)
    assert [r["id"] for r in rollouts_of(server, flag)] == [rollout["id"]]
    assert staff_variant(server, sdk, flag) == "off"
    # The flag shows it too, as long as it stays pulled.
    assert switched_off(server, flag) == {
        "actor": f"oncall-{flag}",
        "on_behalf_of": None,
        "reason": "error rate 0.8%",
        "how": "kill",
        "source_id": None,
    }
    shown = ok(rampup("flag", "show", flag, server=server))
    assert f"by oncall-{flag} with flag kill (error rate 0.8%); stays off until a person turns it on" in shown

    ok(rampup(*way_back.split()[1:], "--reason", "fixed in 1.4.2", server=server))
    assert staff_variant(server, sdk, flag) == "on"  # the person's choice, at 0%: the rule only
    assert switched_off(server, flag) is None
    assert "switched off" not in ok(rampup("flag", "show", flag, server=server))
    again = json.loads(ok(rampup("apply", "-f", str(plan), "--json", server=server)))
    assert again["state"] == "awaiting_approval" and len(rollouts_of(server, flag)) == 2


def test_a_refusal_quoting_a_reason_of_several_lines_is_one_line(
    shared_manual_server: Server, tmp_path: Path
) -> None:
    server, flag = shared_manual_server, f"ks-{uuid.uuid4().hex[:8]}"
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN.format(flag=flag))
    ok(rampup("flag", "create", flag, server=server))
    ok(rampup("flag", "set", flag, "--env", "production", "--enable", "--rollout", "5", server=server))
    ok(
        rampup(
            "flag", "kill", flag, "--env", "production", "--reason", "error rate 0.8%\nINC-42", server=server
        )
    )

    error = one_line_error(rampup("apply", "-f", str(plan), server=server))
    assert "(error rate 0.8% INC-42): a rollout does not turn it back on" in error
