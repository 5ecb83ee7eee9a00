"""A rollout whose satisfaction gate reads what users say: too few ratings decide nothing, equal ratings pass,
and a drop in the treatment's ratings warns; the daily report's FEEDBACK section says so and quotes the
treatment's users — on a manual clock, against a running server."""

from collections.abc import Callable
from typing import Any

from tests.support.api import new_flag
from tests.support.rollouts import at, create_rollout, drive, rollout, summary
from tests.support.servers import FAST, Server
from tests.support.traffic import send_ratings

COMMENT = "the new editor is slow, <b>really</b>; write to ada@example.com"


def satisfaction_gate(status: dict[str, Any]) -> dict[str, Any]:
    return next(g for g in status["gates"] if g["metric"] == "satisfaction")


def test_the_satisfaction_gate_warns_when_the_treatment_s_ratings_drop(
    make_database_url: Callable[[str], str], server_factory: Callable[..., Server]
) -> None:
    server = server_factory(make_database_url("sqlite"), extra_env=FAST, manual_clock=True)
    with server.client() as c:
        flag = new_flag(c)
        plan = {
            "name": "Editor Rollout",
            "flag": flag,
            "environment": "production",
            "stages": [
                {"name": "Half", "percentage": 50, "min_duration": "7d"},
                {"name": "Everyone", "percentage": 100, "min_duration": "1h"},
            ],
            "gates": [{"metric": "satisfaction", "compare": "control", "warn": "< -0.3"}],
        }
        rid = create_rollout(c, plan)
        drive(server, c, rid, at("running", 1), what="stage 1")
        users = [f"{flag}-user-{i}" for i in range(2400)]

        send_ratings(c, flag, users[:10], treatment=[1], control=[5])  # a few angry users
        server.advance("1s")
        few = satisfaction_gate(rollout(c, rid))
        assert few["verdict"] == "inconclusive" and few["needs"]["samples"] > 0, few

        send_ratings(c, flag, users[10:], treatment=[4, 5, 4, 3], control=[4, 5, 4, 3])
        server.advance("1s")
        healthy = rollout(c, rid)
        assert satisfaction_gate(healthy)["verdict"] == "pass", summary(healthy)

        server.advance("25h")  # the next day
        on, off = send_ratings(
            c, flag, users * 2, treatment=[2, 1, 2, 3], control=[4, 5, 4, 5], comment=COMMENT
        )
        assert on > 500 and off > 500
        server.advance("1s")
        dropped = rollout(c, rid)
        gate = satisfaction_gate(dropped)
        assert gate["verdict"] == "warn", summary(dropped)
        assert gate["value"] < -0.3 and gate["upper"] < -0.3 and gate["compare"] == "control"
        assert (
            dropped["state"] == "running" and dropped["stage"]["number"] == 1
        )  # a warning informs, it acts not

        md = c.get("/api/v1/reports/daily", params={"rollout": rid}).text
        feedback = md.split("## FEEDBACK")[1].split("## ACTIONS")[0]
        assert (
            "Satisfaction: " in feedback
            and " with the feature from " in feedback
            and " without from " in feedback
        )
        trend = next(line for line in feedback.splitlines() if line.startswith("- Trend with the feature: "))
        assert "in the 24 hours before" in trend and float(trend.rsplit("(", 1)[1].rstrip(")")) < -1
        quoted = [line for line in feedback.splitlines() if "the new editor is slow" in line]
        assert len(quoted) == 5 and all("&lt;b&gt;" in line and "a…@example.com" in line for line in quoted)
        html = c.get("/api/v1/reports/daily", params={"rollout": rid, "format": "html"}).text
        assert (
            "<b>really</b>" not in html
            and "&lt;b&gt;really&lt;/b&gt;" in html
            and "ada@example.com" not in html
        )
