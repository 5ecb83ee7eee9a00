"""Channel, alert-rule and report-schedule bodies are checked against their schemas before anything reads
them: a wrong type, an unknown field, a huge string or nested junk is refused with 422 naming where, and
changes nothing."""

from collections.abc import Callable
from typing import Any

import pytest

from tests.support.servers import Server

HOOK = {"name": "ops", "type": "webhook", "url": "https://hooks.example.com/x", "secret": "a-long-secret"}
RULE = {"environment": "production", "metric": "error_rate", "condition": "> 1%", "channels": ["ops"]}
SCHEDULE = {"kind": "daily", "flag": "checkout", "environment": "production", "channels": ["ops"], "hour": 8}
HUGE = "x" * 200_000

BAD: list[tuple[str, dict[str, Any] | list[Any] | str, str]] = [
    ("/api/v1/channels", {**HOOK, "name": 5}, "name"),
    ("/api/v1/channels", {**HOOK, "type": "sms"}, "type"),
    ("/api/v1/channels", {**HOOK, "url": ["https://hooks.example.com/x"]}, "url"),
    ("/api/v1/channels", {**HOOK, "url": "https://hooks.example.com/" + HUGE}, "url"),
    ("/api/v1/channels", {**HOOK, "admin": True}, "admin"),
    ("/api/v1/channels", {**HOOK, "min_severity": None}, "min_severity"),
    ("/api/v1/channels", {"name": "m", "type": "email", "host": "smtp", "port": 25.0}, "port"),
    ("/api/v1/channels", {"name": "m", "type": "email", "host": "smtp", "to": [{"$ne": 1}]}, "to.0"),
    ("/api/v1/channels", [HOOK], "body"),
    ("/api/v1/channels", "ops", "body"),
    ("/api/v1/alert-rules", {**RULE, "window": 5}, "window"),
    ("/api/v1/alert-rules", {**RULE, "channels": "ops"}, "channels"),
    ("/api/v1/alert-rules", {**RULE, "threshold": 0.01}, "threshold"),
    ("/api/v1/alert-rules", {**RULE, "condition": "> " + "9" * 100_000}, "condition"),
    ("/api/v1/alert-rules", {**RULE, "tags": {"route": {"$gt": ""}}}, "tags.route"),
    ("/api/v1/alert-rules", {**RULE, "tags": {f"t{i}": "v" for i in range(1000)}}, "tags"),
    ("/api/v1/alert-rules", {**RULE, "severity": "loud"}, "severity"),
    ("/api/v1/alert-rules", {**RULE, "name": "a\x00b"}, "body"),  # named in the message
    ("/api/v1/alert-rules", {k: v for k, v in RULE.items() if k != "environment"}, "environment"),
    ("/api/v1/reports/schedules", {**SCHEDULE, "kind": "monthly"}, "kind"),
    ("/api/v1/reports/schedules", {**SCHEDULE, "hour": "8"}, "hour"),
    ("/api/v1/reports/schedules", {**SCHEDULE, "hour": 8.5}, "hour"),
    ("/api/v1/reports/schedules", {**SCHEDULE, "rollout_id": True}, "rollout_id"),
    ("/api/v1/reports/schedules", {**SCHEDULE, "channels": [["ops"]]}, "channels.0"),
    ("/api/v1/reports/schedules", {**SCHEDULE, "channels": ["ops"] * 10_000}, "channels"),
    ("/api/v1/reports/schedules", {**SCHEDULE, "weekday": {"day": 4}}, "weekday"),
    ("/api/v1/reports/schedules", {**SCHEDULE, "contact": HUGE}, "contact"),
    ("/api/v1/reports/schedules", {**SCHEDULE, "cron": "* * * * *"}, "cron"),
    # a core aggregation, but not one a custom metric may use
    (
        "/api/v1/metric-definitions",
        {"name": "visits", "event": "visit", "aggregation": "rate"},
        "aggregation",
    ),
]


@pytest.fixture(scope="module")
def server(module_server_factory: Callable[..., Server], module_database_url: Callable[[str], str]) -> Server:
    server = module_server_factory(module_database_url("sqlite"))
    with server.client() as api:
        assert api.post("/api/v1/flags", json={"key": "checkout"}).status_code == 201
        assert api.post("/api/v1/channels", json=HOOK).status_code == 201
    return server


@pytest.mark.parametrize(("path", "body", "where"), BAD, ids=[f"{p}:{w}" for p, _, w in BAD])
def test_a_bad_body_is_refused_where_it_is_wrong_and_changes_nothing(
    server: Server, path: str, body: Any, where: str
) -> None:
    with server.client() as api:
        listed = api.get(path).json()
        audit = api.get("/api/v1/audit").json()
        response = api.post(path, json=body)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid" and error["where"] == where and error["message"], error
        assert len(response.content) < 2_000, "the error does not echo a huge input back"
        assert api.get(path).json() == listed
        assert api.get("/api/v1/audit").json() == audit


def test_the_good_bodies_beside_them_are_taken(server: Server) -> None:
    with server.client() as api:
        assert api.post("/api/v1/alert-rules", json=RULE).status_code == 201
        assert api.post("/api/v1/reports/schedules", json=SCHEDULE).status_code == 201


def test_the_schema_lists_the_values_the_core_accepts(server: Server) -> None:
    with server.client() as api:
        schemas = api.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["CustomMetricIn"]["properties"]["aggregation"]["enum"] == [
        "count",
        "per_user",
        "ratio",
        "mean",
        "percentile",
    ]
    assert schemas["ReportKind"]["enum"] == ["daily", "support", "weekly", "completion"]
    assert schemas["ChannelType"]["enum"] == ["slack", "webhook", "email", "pagerduty"]
