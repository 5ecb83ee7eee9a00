"""Reports rendered from a Report built by hand (Markdown and HTML, with charts)."""

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from rampup.adapters.reports.charts import sparkline, svg_chart
from rampup.adapters.reports.labels import gate_unit, value_text
from rampup.adapters.reports.render import JinjaRenderer
from rampup.core.feedback import Entry
from rampup.core.plans import Signoff
from rampup.core.reports import (
    AlertBreach,
    AwaitingSignoffs,
    Breaching,
    Chart,
    Disabled,
    Estimate,
    Incident,
    Marker,
    MetricRow,
    NeedsSamples,
    Paused,
    PlanStage,
    Reception,
    Report,
    Soaking,
    SoakOver,
    StageChange,
    StageRef,
    StageVisit,
    Tickets,
    Trend,
    Users,
    Watch,
    comment_of,
    reception,
)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # 08:00 in Berlin
STAGE_2 = NOW - timedelta(hours=20)
STARTED = NOW - timedelta(hours=68)
HOURS = tuple(NOW - timedelta(hours=24 - i) for i in range(24))


def chart(metric: str, unit: str, on: list[float | None], off: list[float | None]) -> Chart:
    return Chart(
        metric,
        unit,
        NOW - timedelta(hours=24),
        NOW,
        HOURS,
        {"on": tuple(on), "off": tuple(off)},
        (Marker(STAGE_2, "25%"),),
    )


ROWS = (
    MetricRow(
        "error_rate",
        "fraction",
        {"on": Estimate(0.00041, 0.0002, 0.0008, 12044), "off": Estimate(0.00038, 0.0002, 0.0005, 36120)},
        "< 0.1%",
        "target < 0.1%, rollback > 0.5%, disable > 1%",
        "absolute",
        300.0,
        "pass",
        Estimate(0.00041, 0.00012, 0.0009, 12044),
    ),
    MetricRow(
        "unhandled_exceptions",
        "count",
        {"on": Estimate(0, 0, 3.7, 0)},
        None,
        "rollback > 5",
        "absolute",
        0.0,
        "pass",
        Estimate(0, None, None, 0),
    ),
    MetricRow(
        "api_latency_p95",
        "ms",
        {"on": Estimate(412.0, 398.0, 430.0, 12044), "off": Estimate(398.0, 390.0, 405.0, 36120)},
        "< 500ms",
        "target < 500ms, rollback > 1000ms",
        "absolute",
        0.0,
        "pass",
        Estimate(405.0, 380.0, 431.0, 9000),
    ),
    MetricRow(
        "lcp_p75",
        "ms",
        {"on": Estimate(1830.0, 1700.0, 1950.0, 2400), "off": Estimate(1790.0, 1700.0, 1850.0, 7300)},
        "< 2.5s",
        "target < 2.5s, rollback > 4s",
        "absolute",
        0.0,
        "inconclusive",
        Estimate(1830.0, 1600.0, 2600.0, 800),
        needs_samples=6400.0,
        needs_s=10800.0,
    ),
    MetricRow(
        "support_tickets",
        "count",
        {"all": Estimate(12.0, 6.0, 21.0, 3)},
        None,
        "warn > +10%",
        "baseline",
        0.0,
        "inconclusive",
        Estimate(0.08, -0.2, 0.45, 40),
    ),
)


def report(**changes: Any) -> Report:
    base = Report(
        kind="daily",
        generated_at=NOW,
        timezone="Europe/Berlin",
        start=NOW - timedelta(hours=24),
        end=NOW,
        rollout_id=7,
        name="workstation-rollout",
        flag="workstation",
        environment="production",
        state="running",
        status="normal",
        stage=2,
        stage_name="Expanded",
        percentage=25.0,
        stage_count=4,
        stage_entered_at=STAGE_2,
        started_at=STARTED,
        ended_at=None,
        gates_at=NOW,
        metrics=ROWS,
        users=Users(1234, 3741),
        incidents=(),
        reception=Reception(tickets=Tickets(12.0, 0.08)),
        actions=(
            Soaking(NOW + timedelta(hours=28), timedelta(hours=28), StageRef(3, "General", 50.0)),
            NeedsSamples("lcp_p75", 6400.0, timedelta(hours=3)),
        ),
        visits=(
            StageVisit(
                1,
                "Early Access",
                10.0,
                STARTED,
                STAGE_2,
                "advanced",
                "controller",
                "stage 1 (Early Access) soaked 48h, all gates pass",
            ),
            StageVisit(2, "Expanded", 25.0, STAGE_2, None, "", "controller", "stage 1 soaked 48h"),
        ),
        plan_stages=(
            PlanStage(1, "Early Access", 10.0, 172800.0, STARTED),
            PlanStage(2, "Expanded", 25.0, 172800.0, STAGE_2),
            PlanStage(3, "General", 50.0, 172800.0, None),
            PlanStage(4, "Full Rollout", 100.0, 604800.0, None),
        ),
        signoffs=(Signoff(1, "Support team briefed", "dana", STARTED),),
        charts=(
            chart("error_rate", "fraction", [0.0004] * 12 + [None] + [0.0005] * 11, [0.0003] * 24),
            chart("api_latency_p95", "ms", [400.0 + i for i in range(24)], [390.0] * 24),
        ),
        contact="team@example.com",
        started_by="dana",
        channels=("rollout-channel", "support-email"),
        flag_exists=True,
    )
    return replace(base, **changes)


ROLLBACK = Incident(
    NOW - timedelta(hours=3),
    "rolled back",
    StageChange(25.0, 10.0),
    "controller",
    "error_rate = 0.0081 [0.0062, 0.0104] breached rollback > 0.5% for 5m (n = 9120)",
)


# ---------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (0.00041, "fraction", "0.041%"),
        (0.005, "fraction", "0.5%"),
        (0.0, "fraction", "0%"),
        (0.5, "fraction", "50%"),
        (0.069, "relative", "+6.9%"),
        (-0.1, "relative", "-10%"),
        (412.4, "ms", "412 ms"),
        (1830.0, "ms", "1.83 s"),
        (12044.0, "count", "12,044"),
        (86.0, "score", "86"),
        (3.123, "actions/user", "3.12 actions/user"),
        (None, "ms", "—"),
        (float("inf"), "relative", "—"),
    ],
)
def test_values_read_as_people_write_them(value: float | None, unit: str, text: str) -> None:
    assert value_text(value, unit) == text


@pytest.mark.parametrize(
    ("metric", "compare", "value", "text"),
    [
        ("error_rate", "absolute", 0.0042, "0.42%"),
        ("api_latency_p95", "absolute", 412.0, "412 ms"),
        ("api_latency_p95", "control", 0.12, "+12%"),  # a change against control, not milliseconds
        ("satisfaction", "baseline", -0.05, "-5%"),
        ("checkout_clicks", "absolute", 3.0, "3"),  # a custom metric: no unit known by name
    ],
)
def test_a_gates_value_reads_in_its_unit(metric: str, compare: str, value: float, text: str) -> None:
    assert value_text(value, gate_unit(metric, compare)) == text


# ---------------------------------------------------------------- Markdown


def test_the_example_plans_daily_report_has_every_section_with_real_numbers() -> None:
    md = JinjaRenderer().markdown(report())
    assert md.startswith("# Stage 2: 25% Rollout - Daily Report\n")
    for line in [
        "Date: 2026-11-26",
        "Duration: 20 hours since stage 2 (Expanded) began; 68 hours since the rollout started",
        "Rollout: 25% of users (stage 2 of 4)",
        "Status: running — ✅ NORMAL",
        "- Error Rate: 0.041% with the feature, 0.038% without (target: < 0.1%) — ✅ pass: "
        "0.041% [0.012% – 0.09%], n = 12,044",
        "- Critical Errors (unhandled exceptions): 0 with the feature (target: rollback > 5) — ✅ pass: 0, n = 0",
        "- API Response (p95): 412 ms with the feature, 398 ms without (target: < 500ms) — ✅ pass: "
        "405 ms [380 ms – 431 ms], n = 9,000",
        "- Page Load (LCP p75): 1.83 s with the feature, 1.79 s without (target: < 2.5s) — ⏳ inconclusive: "
        "1.83 s [1.6 s – 2.6 s], n = 800",
        "- Support Tickets: 12 across all users (target: warn > +10% vs the week before) — ⏳ inconclusive: "
        "+8% [-20% – +45%], n = 40",
        "- Users Affected: 1,234 (24.8% of 4,975 users seen)",
        "- None in the last 24 hours.",
        "- Support tickets: 12 in the window (+8% against the week before the rollout, per hour)",
        "- Soak ends in 28 h (2026-11-27 12:00), then stage 3 (General, 50%) if every gate passes.",
        "Contact: team@example.com · notifications go to rollout-channel, support-email",
    ]:
        assert line in md.splitlines(), f"missing {line!r} in\n{md}"
    sections = [line for line in md.splitlines() if line.startswith("## ")]
    assert sections == ["## METRICS", "## INCIDENTS", "## FEEDBACK", "## ACTIONS", "## CHARTS"]
    assert "\n\n\n" not in md


def test_markdown_charts_are_sparklines_per_variant_with_stage_changes_marked() -> None:
    md = JinjaRenderer().markdown(report())
    blocks = re.findall(r"```text\n(.*?)\n```", md, re.DOTALL)
    assert len(blocks) == 2
    on, off, markers = blocks[0].splitlines()
    assert on.startswith("on   ") and off.startswith("off  ")
    assert len(on) == len(off) == 5 + 24
    assert on[5 + 12] == " "  # the hour without data is a gap
    assert markers.strip() == "↑25%"
    # 20 hours before the end of a 24-hour window: a sixth of the way along.
    assert markers.index("↑") == 5 + round(4 / 24 * 23)
    assert "**Error Rate** per variant, on one scale from 0.03% to 0.05%" in md


def test_incidents_and_a_breaching_status_are_reported() -> None:
    md = JinjaRenderer().markdown(report(incidents=(ROLLBACK,), status="rolled_back", state="rolled_back"))
    assert (
        "- 2026-11-26 05:00 — rolled back (25% → 10%) by controller: error_rate = 0.0081 [0.0062, 0.0104] "
        "breached rollback > 0.5% for 5m (n = 9120)"
    ) in md.splitlines()
    assert "Status: rolled back — 🚨 ROLLED BACK" in md
    assert "None in the last 24 hours." not in md


def test_support_email_follows_the_notification_template() -> None:
    md = JinjaRenderer().markdown(
        report(
            kind="support",
        )
    )
    lines = md.splitlines()
    assert lines[0] == "# Workstation Rollout - Daily Status 2026-11-26"
    for line in [
        "Rollout: 25%",
        "Duration: 68 hours (20 hours at 25%)",
        "Status: ✅ NORMAL",
        "- Error Rate: 0.041% (normal)",
        "- Performance: 412 ms API response p95 (good)",
        "- Users: 1,234 (24.8% of total)",
        "- Support Tickets: 12 (+8% against the week before)",
        "INCIDENTS: None",
        "NEXT STEPS:",
        "Contact: team@example.com",
    ]:
        assert line in lines, f"missing {line!r} in\n{md}"


def test_support_email_says_so_when_there_are_no_data() -> None:
    md = JinjaRenderer().markdown(report(kind="support", metrics=(), users=None, charts=()))
    for line in [
        "- Error Rate: no data",
        "- Performance: no data",
        "- Users: none seen",
        "- Support Tickets: none posted",
    ]:
        assert line in md.splitlines()


def test_weekly_summary_lists_the_weeks_stages() -> None:
    md = JinjaRenderer().markdown(
        report(
            kind="weekly",
            start=NOW - timedelta(days=7),
        )
    )
    assert "Week: 2026-11-19 08:00 – 2026-11-26 08:00" in md
    assert (
        "- Stage 1 (Early Access, 10%): 2026-11-23 12:00 → 2026-11-25 12:00 (48 hours), advanced by "
        "controller: stage 1 (Early Access) soaked 48h, all gates pass"
    ) in md.splitlines()
    assert "- Stage 2 (Expanded, 25%): 2026-11-25 12:00 → now (20 hours)" in md.splitlines()
    assert [line for line in md.splitlines() if line.startswith("## ")] == [
        "## PROGRESS THIS WEEK",
        "## METRICS",
        "## INCIDENTS",
        "## FEEDBACK",
        "## NEXT STEPS",
        "## CHARTS",
    ]


def test_completion_report_has_every_stage_with_its_dates_and_every_rollback() -> None:
    ended = NOW
    visits = (
        StageVisit(1, "Early Access", 10.0, STARTED, STAGE_2, "advanced", "controller", "soaked"),
        StageVisit(2, "Expanded", 25.0, STAGE_2, ROLLBACK.at, "rolled back", "controller", ROLLBACK.reason),
        StageVisit(1, "Early Access", 10.0, ROLLBACK.at, ended, "disabled", "lee", "checkout broken"),
    )
    md = JinjaRenderer().markdown(
        report(
            kind="completion",
            state="disabled",
            status="disabled",
            stage=1,
            stage_name="Early Access",
            percentage=10.0,
            ended_at=ended,
            visits=visits,
            start=STARTED,
            incidents=(
                ROLLBACK,
                Incident(ended, "disabled", StageChange(10.0, 0.0, kill=True), "lee", "checkout broken"),
            ),
            actions=(Disabled("checkout broken"),),
        )
    )
    lines = md.splitlines()
    assert lines[0] == "# Workstation Rollout Completion Report"
    for line in [
        "- Not completed: the rollout is disabled at stage 1 (Early Access, 10%)",
        "- Started 2026-11-23 12:00, ended 2026-11-26 08:00 (68 hours)",
        "- Rollbacks: 1 · kill switches: 1 · pauses: 0",
        "- Stage 1: 2026-11-23 12:00 - 10% rollout (Early Access)",
        "- Stage 2: 2026-11-25 12:00 - 25% rollout (Expanded)",
        "- Stage 3: not reached - 50% rollout (General)",
        "- Disabled: 2026-11-26 08:00",
        "- Stage 2 (Expanded, 25%): 2026-11-25 12:00 → 2026-11-26 05:00 (17 hours), rolled back by controller: "
        + ROLLBACK.reason,
        "- Stage 1 (Early Access, 10%): 2026-11-26 05:00 → 2026-11-26 08:00 (3 hours), disabled by lee: "
        "checkout broken",
        '- "Support team briefed" for stage 1: dana, 2026-11-23 12:00',
        "- 2026-11-26 08:00 — disabled (kill switch) by lee: checkout broken",
    ]:
        assert line in lines, f"missing {line!r} in\n{md}"
    assert [line for line in lines if line.startswith("## ")] == [
        "## Summary",
        "## Metrics",
        "## Timeline",
        "## Incidents and Rollbacks",
        "## Feedback",
        "## Lessons Learned",
        "## Next Steps",
        "## Charts",
    ]


def test_next_steps_and_alerts_are_put_into_words_with_the_commands_to_type() -> None:
    md = JinjaRenderer().markdown(
        report(
            actions=(
                SoakOver(None, ()),
                SoakOver(StageRef(3, "General", 50.0), ("error_rate", "lcp_p75")),
                Watch("api_latency_p95", "target < 500ms, warn > 300ms"),
                Breaching("error_rate", "rollback > 0.5%, disable > 5%", True, timedelta(minutes=5)),
                Breaching("error_rate", "rollback > 0.5%", False, timedelta(0)),
                AwaitingSignoffs(("approval",), StageRef(4, "Full Rollout", 100.0)),
            ),
            incidents=(
                Incident(
                    STAGE_2,
                    "alert",
                    AlertBreach("Checkout errors", "error_rate", "> 0.5%", 0.0081),
                    "",
                    "firing",
                ),
                Incident(NOW, "paused", StageChange(25.0, 25.0), "lee", "holiday", None),
            ),
        )
    )
    for line in [
        "- Soak is over and every gate passes: completion at the controller's next tick.",
        "- Soak is over; stage 3 (General, 50%) follows once error_rate, lcp_p75 pass.",
        "- Watch api_latency_p95: it is past its target or warning (target < 500ms, warn > 300ms).",
        "- error_rate breaches rollback > 0.5%, disable > 5%: the controller pulls the kill switch if it lasts "
        "5 min.",
        "- error_rate breaches rollback > 0.5%: the controller steps back.",
        "- Waiting for approval before stage 4 (Full Rollout, 100%): "
        '`rampup rollout signoff 7 "PREREQUISITE" --by NAME`, `rampup rollout approve 7`.',
        "- 2026-11-25 12:00 — alert (error_rate > 0.5% at 0.0081) by alert rule 'Checkout errors': firing",
        "- 2026-11-26 08:00 — paused (held at 25%) by lee: holiday",
    ]:
        assert line in md.splitlines(), f"missing {line!r} in\n{md}"


@pytest.mark.parametrize(
    ("kind", "title", "heading"),
    [
        ("daily", "Workstation Rollout - Daily Report 2026-11-26", "Stage 2: 25% Rollout - Daily Report"),
        (
            "support",
            "Workstation Rollout - Daily Status 2026-11-26",
            "Workstation Rollout - Daily Status 2026-11-26",
        ),
        (
            "weekly",
            "Workstation Rollout - Weekly Summary 2026-W48",
            "Workstation Rollout - Weekly Summary 2026-W48",
        ),
        ("completion", "Workstation Rollout - Completion Report", "Workstation Rollout Completion Report"),
    ],
)
def test_titles_name_the_rollout_as_people_call_it_and_the_local_day_or_week(
    kind: str, title: str, heading: str
) -> None:
    r = report(kind=kind, name="workstation", contact=None)
    assert JinjaRenderer().title(r) == title
    md = JinjaRenderer().markdown(r)
    assert md.splitlines()[0] == f"# {heading}"
    assert "Contact: dana (started this rollout)" in md


# ---------------------------------------------------------------- HTML and SVG


def test_html_is_self_contained_with_one_polyline_per_variant_and_stage_markers() -> None:
    html = JinjaRenderer().html(report())
    assert html.startswith("<!DOCTYPE html>")
    assert "<style>" in html and "<script" not in html
    assert not re.search(r'(src|href)="', html), "no external resources"
    svgs = re.findall(r"<svg .*?</svg>", html, re.DOTALL)
    assert len(svgs) == 2
    for svg in svgs:
        assert re.findall(r'<polyline class="series" data-variant="(\w+)"', svg) == ["on", "off"]
        assert len(re.findall(r'<line class="marker"', svg)) == 1
        assert '<text class="marker-label"' in svg and ">25%</text>" in svg
        assert 'stroke-dasharray="4 3"' in svg
    assert "on (with the feature)" in svgs[0] and "off (without)" in svgs[0]
    for text in [
        "Stage 2: 25% Rollout - Daily Report",
        "0.041%",
        "12,044",
        "1.83 s",
        "24.8% of the users seen",
        "None in the last 24 hours.",
        "✅ NORMAL",
        "team@example.com",
    ]:
        assert text in html, text


def test_html_escapes_what_people_wrote() -> None:
    evil = replace(ROLLBACK, reason="<script>alert(1)</script> & more")
    html = JinjaRenderer().html(report(incidents=(evil,), actions=(Paused("<now> & then"),)))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "Paused (&lt;now&gt; &amp; then). <code>rampup rollout resume 7</code> resumes;" in html


def feedback(comment: str, score: float | None = 2.0, scale: str | None = "1-5") -> Entry:
    return Entry(
        int(NOW.timestamp() * 1000), "u1", score, scale, comment, None, {"workstation": "on"}, "native"
    )


EVIL = '<script>alert("x")</script> <img src=x onerror=alert(1)> [click](http://evil.example) **bold** &amp;'


def test_comments_are_quoted_as_plain_text_clipped_and_with_addresses_masked() -> None:
    quoted = comment_of(feedback("Mail  me at\nada@example.com " + "x" * 400))
    assert quoted.text.startswith("Mail me at a…@example.com xxx") and len(quoted.text) <= 280
    assert quoted.text.endswith("…") and "ada@" not in quoted.text
    assert (quoted.rating, comment_of(feedback("meh", 1.0, "thumbs")).rating) == ("2 on 1-5", "thumbs down")
    assert comment_of(feedback("no rating", None, None)).rating == ""


def test_what_users_said_is_in_every_report_and_never_becomes_markup() -> None:
    said = report(
        reception=reception(
            (),
            {"off": Estimate(4.3, 4.2, 4.4, 340), "on": Estimate(2.5, 2.25, 2.75, 120)},
            {"on": Estimate(0.12, 0.07, 0.19, 120), "off": Estimate(0.81, 0.77, 0.85, 340)},
            {"on": 130, "off": 350},
            Trend(2.5, 4.1, timedelta(hours=24)),
        ),
        comments=(comment_of(feedback(EVIL)),),
    )
    md = JinjaRenderer().markdown(said)
    lines = md[md.index("## FEEDBACK") : md.index("Newest comments")].splitlines()
    assert lines[2:6] == [
        "- Feedback received: 130 with the feature, 350 without",
        "- Satisfaction: 2.50 of 5 (95%: 2.25–2.75) with the feature from 120 ratings, "
        "4.30 of 5 (95%: 4.20–4.40) without from 340 ratings",
        "- Positive ratings (4 or 5 of 5, a thumbs-up): 12% positive with the feature, 81% positive without",
        "- Trend with the feature: 2.50 of 5 against 4.10 in the 24 hours before (-1.60)",
    ]
    for kind in ("daily", "weekly", "completion"):
        html = JinjaRenderer().html(replace(said, kind=kind))
        assert "Satisfaction: 2.50 of 5" in html and "<script>" not in html and "<img" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html and "&amp;amp;" in html
        md = JinjaRenderer().markdown(replace(said, kind=kind))
        assert "- Trend with the feature: 2.50 of 5 against 4.10 in the 24 hours before (-1.60)" in md
        quoted = next(line for line in md.splitlines() if "(2 on 1-5)" in line)
        assert "<" not in quoted and "[click](" not in quoted and "**" not in quoted
        assert '&lt;script&gt;alert("x")&lt;/script&gt;' in quoted
        assert r"\[click\](http://evil.example) \*\*bold\*\* &amp;amp;" in quoted


def test_svg_chart_scales_from_zero_and_says_when_there_is_no_data() -> None:
    c = chart("error_rate", "fraction", [0.004, 0.008], [0.001, 0.002])
    c = replace(c, times=HOURS[:2], series={"on": (0.004, 0.008), "off": (0.001, 0.002)})
    svg = svg_chart(c, BERLIN, lambda v: value_text(v, "fraction"))
    assert ">0%</text>" in svg and ">0.8%</text>" in svg  # a round top at or above the highest value
    empty = replace(c, series={"on": (None, None)})
    svg = svg_chart(empty, BERLIN, lambda v: value_text(v, "fraction"))
    assert "no data in this window" in svg
    assert re.findall(
        r'data-variant="(\w+)" fill="none" stroke="#\w+" stroke-width="2" stroke-linejoin="round" '
        r'points=""',
        svg,
    ) == ["on"]


def test_sparkline_shares_a_scale_and_averages_long_series() -> None:
    assert sparkline([0.0, 1.0, None, 2.0], 0.0, 4.0) == "▁▃ ▅"
    assert len(sparkline([float(i) for i in range(500)], 0.0, 499.0, width=48)) <= 48
