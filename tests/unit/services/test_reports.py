"""Reports with injected time, over the in-memory store: filled from the telemetry and the transitions written
through the services, and schedules that queue each period's report once, however often
and by however many instances they are run."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from rampup.adapters.reports.render import JinjaRenderer
from rampup.bootstrap import Container
from rampup.core.plans import Phase, Plan
from rampup.core.reports import RolledBack, StageChange
from rampup.core.telemetry import Kind, Observation
from rampup.errors import InvalidInput, NotFound
from rampup.services.reports import ReportService

BERLIN = ZoneInfo("Europe/Berlin")
FLAG, ENV = "workstation", "production"  # the example flag a fresh database has
PLAN = {
    "name": "workstation-rollout",
    "flag": FLAG,
    "environment": ENV,
    "stages": [
        {"name": "Early Access", "percentage": 10, "min_duration": "48h"},
        {"name": "Expanded", "percentage": 25, "min_duration": "48h"},
        {"name": "General", "percentage": 50, "min_duration": "48h"},
        {"name": "Full Rollout", "percentage": 100, "min_duration": "7d"},
    ],
    "gates": [
        {"metric": "error_rate", "target": "< 0.1%", "rollback": "> 0.5%", "disable": "> 1%", "for": "5m"},
        {"metric": "api_latency_p95", "target": "< 500ms", "rollback": "> 1000ms"},
        {"metric": "data_loss", "rollback_to": 0},
    ],
}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 3, 23, 6, 0, tzinfo=UTC))  # a Monday, 07:00 in Berlin


@pytest.fixture
def container(memory_container: Callable[..., Container], clock: Clock) -> Iterator[Container]:
    c = memory_container(clock)
    for name in ("support-email", "rollout-channel"):
        c.notifications.create_channel(
            {
                "name": name,
                "type": "webhook",
                "url": "http://127.0.0.1:9/hook",
                "secret": "a-long-shared-secret",
            },
            "dana",
        )
    yield c
    c.close()


@pytest.fixture
def reports(container: Container, clock: Clock) -> ReportService:
    return ReportService(
        container.store,
        clock,
        container.rollouts,
        container.metrics,
        container.notifications,
        JinjaRenderer(),
    )


def start_rollout(c: Container) -> int:
    return c.rollouts.create(PLAN, Plan.parse(PLAN), "dana")


def queued(c: Container) -> list[dict[str, Any]]:
    """Report notifications in the outbox, oldest first."""
    with c.store.read() as tx:
        items = tx.outbox.items(1000)
    found = [
        dict(i.payload["notification"], channel=i.payload["channel"])
        for i in items
        if i.payload.get("notification", {}).get("type", "").startswith("report.")
    ]
    return sorted(found, key=lambda n: (n["at"], n["channel"]))


def test_a_week_of_schedules_queues_each_days_and_each_weeks_report_once(
    container: Container, reports: ReportService, clock: Clock
) -> None:
    rid = start_rollout(container)
    reports.add_schedule(
        {
            "kind": "support",
            "flag": FLAG,
            "environment": ENV,
            "channels": ["support-email"],
            "hour": 8,
            "timezone": "Europe/Berlin",
            "contact": "team@example.com",
        },
        "dana",
    )
    reports.add_schedule(
        {
            "kind": "weekly",
            "rollout_id": rid,
            "channels": ["rollout-channel", "support-email"],
            "hour": 16,
            "weekday": "friday",
            "timezone": "Europe/Berlin",
        },
        "dana",
    )
    other = ReportService(
        container.store,
        clock,
        container.rollouts,
        container.metrics,
        container.notifications,
        JinjaRenderer(),
    )  # a second instance, running the same schedules
    end = datetime(2026, 4, 1, 5, 0, tzinfo=UTC)
    sent = 0
    while clock.now < end:
        clock.now += timedelta(minutes=15)
        sent += reports.send_due() + other.send_due()
    notes = queued(container)
    support = [n for n in notes if n["type"] == "report.support"]
    weekly = [n for n in notes if n["type"] == "report.weekly"]
    # Monday 23 March to Tuesday 31 March at 08:00 local, across the change to summer time on the 29th.
    assert [n["title"] for n in support] == [
        f"Workstation Rollout - Daily Status 2026-03-{d}" for d in range(23, 32)
    ]
    assert {datetime.fromisoformat(n["at"]).astimezone(BERLIN).strftime("%H:%M") for n in support} == {
        "08:00"
    }
    assert [n["title"] for n in weekly] == ["Workstation Rollout - Weekly Summary 2026-W13"] * 2
    assert {n["channel"] for n in weekly} == {"rollout-channel", "support-email"}
    assert weekly[0]["id"] == weekly[1]["id"]  # one notification, to two channels
    assert datetime.fromisoformat(weekly[0]["at"]).astimezone(BERLIN).strftime("%a %H:%M") == "Fri 16:00"
    assert sent == len(support) + 1
    first = support[0]
    assert first["text"].startswith("# Workstation Rollout - Daily Status 2026-03-23\n")
    assert "Rollout: 10%" in first["text"] and "Contact: team@example.com" in first["text"]
    assert first["html"].startswith("<!DOCTYPE html>") and "<svg" in first["html"]
    assert first["details"]["period"] == "2026-03-23" and first["details"]["rollout_id"] == rid
    listed = {s.record.schedule.kind: s for s in reports.schedules()}
    assert listed["support"].record.last_period == "2026-03-31"
    assert listed["support"].next_at == datetime(2026, 4, 1, 6, 0, tzinfo=UTC)  # 08:00 CEST
    assert listed["weekly"].record.last_period == "2026-W13"
    assert listed["weekly"].next_at == datetime(2026, 4, 3, 14, 0, tzinfo=UTC)


def test_the_completion_report_goes_out_once_when_the_rollout_ends(
    container: Container, reports: ReportService, clock: Clock
) -> None:
    rid = start_rollout(container)
    reports.add_schedule({"kind": "completion", "rollout_id": rid, "channels": ["rollout-channel"]}, "dana")
    for _ in range(4):
        clock.now += timedelta(days=2)
        assert reports.send_due() == 0
        container.rollouts.act(rid, "advance", "lee", "healthy")
    assert container.rollouts.rollout(rid).record.state.phase is Phase.COMPLETED
    clock.now += timedelta(minutes=1)
    assert reports.send_due() == 1
    assert reports.send_due() == 0
    (note,) = queued(container)
    assert note["type"] == "report.completion" and note["title"] == "Workstation Rollout - Completion Report"
    text = note["text"]
    assert "- All 4 rollout stages completed; 100% of users have the feature since 2026-03-29 06:00" in text
    for line in [
        "- Stage 1: 2026-03-23 06:00 - 10% rollout (Early Access)",
        "- Stage 4: 2026-03-29 06:00 - 100% rollout (Full Rollout)",
        "- Completed: 2026-03-31 06:00",
        "- Rollbacks: 0 · kill switches: 0 · pauses: 0",
    ]:
        assert line in text.splitlines(), f"missing {line!r} in\n{text}"
    assert "- None: no rollback, kill switch, pause or alert." in text


def test_daily_reports_stop_the_day_after_the_rollout_ends_and_need_a_live_rollout(
    container: Container, reports: ReportService, clock: Clock
) -> None:
    rid = start_rollout(container)
    by_id = reports.add_schedule(
        {"kind": "daily", "rollout_id": rid, "channels": ["rollout-channel"], "hour": 9}, "dana"
    )
    by_flag = reports.add_schedule(
        {"kind": "daily", "flag": FLAG, "environment": ENV, "channels": ["support-email"], "hour": 9}, "dana"
    )
    clock.now = datetime(2026, 3, 23, 9, 0, tzinfo=UTC)
    assert reports.send_due() == 2
    clock.now += timedelta(hours=2)
    container.rollouts.act(rid, "disable", "lee", "checkout broken")
    clock.now = datetime(2026, 3, 24, 9, 0, tzinfo=UTC)
    assert (
        reports.send_due() == 1
    )  # the schedule of rollout 1 reports its last day; no rollout is live any more
    for day in (25, 26):
        clock.now = datetime(2026, 3, day, 9, 0, tzinfo=UTC)
        assert reports.send_due() == 0
    listed = {s.record.id: s.record for s in reports.schedules()}
    assert listed[by_id.record.id].last_period == listed[by_flag.record.id].last_period == "2026-03-26"
    last = queued(container)[-1]
    assert last["title"] == "Workstation Rollout - Daily Report 2026-03-24"
    assert "- 2026-03-23 11:00 — disabled (kill switch) by lee: checkout broken" in last["text"].splitlines()


def test_reports_are_filled_from_the_telemetry_and_the_transitions(
    container: Container, reports: ReportService, clock: Clock
) -> None:
    rid = start_rollout(container)
    clock.now += timedelta(hours=1)

    def traffic(on_failures: int, off_failures: int) -> None:
        at = int(clock.now.timestamp() * 1000)
        events = [
            Observation(
                Kind.REQUEST,
                at + i,
                f"user-{i}",
                {FLAG: i < 100},
                200.0 + i % 100,
                (i < on_failures) if i < 100 else (i - 100 < off_failures),
            )
            for i in range(1000)
        ]
        events += [Observation(Kind.ERROR, at, "user-1", {FLAG: True}, failed=True, message="TypeError")]
        container.ingest.ingest(ENV, events)

    traffic(on_failures=1, off_failures=3)
    clock.now += timedelta(hours=1)
    container.rollouts.act(rid, "advance", "lee", "early numbers look fine")
    clock.now += timedelta(hours=1)
    traffic(on_failures=2, off_failures=0)
    clock.now += timedelta(hours=1)
    container.rollouts.act(rid, "rollback", "lee", "checkout bug")
    clock.now += timedelta(hours=1)

    report = reports.build("daily", rid, tz="Europe/Berlin")
    assert (report.stage, report.percentage, report.state, report.status) == (
        1,
        10.0,
        "rolled_back",
        "rolled_back",
    )
    rows = {m.metric: m for m in report.metrics}
    errors = rows["error_rate"]
    assert errors.window["on"].value == pytest.approx(3 / 200)
    assert errors.window["off"].value == pytest.approx(3 / 1800)
    assert errors.window["on"].samples == 200 and errors.target == "< 0.1%"
    assert errors.verdict is not None  # judged on the stage's data (none since the step back: inconclusive)
    assert rows["api_latency_p95"].window["on"].value == pytest.approx(295, rel=0.02)
    assert rows["unhandled_exceptions"].window["on"].value == 2  # not a gate, but it happened
    assert report.users is not None and (report.users.treatment, report.users.control) == (100, 900)
    assert [(i.kind, i.change, i.actor, i.reason) for i in report.incidents] == [
        ("rolled back", StageChange(25.0, 10.0), "lee", "checkout bug")
    ]
    assert [(v.number, v.outcome) for v in report.visits] == [(1, "advanced"), (2, "rolled back"), (1, "")]
    chart = {c.metric: c for c in report.charts}["error_rate"]
    assert list(chart.series) == ["on", "off"] and [m.label for m in chart.markers] == ["10%", "25%", "10%"]
    assert any(v == pytest.approx(0.01) for v in chart.series["on"] if v is not None)
    assert report.actions[0] == RolledBack(10.0, "checkout bug")

    md = reports.render(report, "md")
    assert "- Error Rate: 1.5% with the feature, 0.167% without (target: < 0.1%)" in md
    assert "- Users Affected: 100 (10% of 1,000 users seen)" in md
    assert "- Rolled back to 10% (checkout bug). It holds there: investigate the root cause" in md
    html = reports.render(report, "html")
    assert html.count("<svg") == 2 and html.count('class="series"') == 4


def test_schedules_are_checked_against_what_exists(container: Container, reports: ReportService) -> None:
    rid = start_rollout(container)
    base = {"kind": "daily", "rollout_id": rid, "channels": ["rollout-channel"], "hour": 8}
    for change, where in (
        ({"channels": ["nowhere"]}, "channels"),
        ({"rollout_id": 999}, "rollout_id"),
        ({"rollout_id": None, "flag": "nope", "environment": ENV}, "flag"),
        ({"rollout_id": None, "flag": FLAG, "environment": "moon"}, "environment"),
    ):
        with pytest.raises(InvalidInput) as caught:
            reports.add_schedule({**base, **change}, "dana")
        assert caught.value.where == where
    created = reports.add_schedule(base, "dana").record.id
    assert [s.record.id for s in reports.schedules()] == [created]
    reports.delete_schedule(created, "dana")
    assert reports.schedules() == []
    with pytest.raises(NotFound):
        reports.delete_schedule(created, "dana")
    assert [e.action for e in container.flags.audit(target=f"report_schedule:{created}")] == [
        "report_schedule.delete",
        "report_schedule.create",
    ]
    with pytest.raises(NotFound):
        reports.build("daily", 999)
    with pytest.raises(InvalidInput):
        reports.build("monthly", rid)
