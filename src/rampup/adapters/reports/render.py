"""Reports as Markdown and as self-contained HTML (inline CSS and SVG charts, fit for e-mail), from Jinja2
templates (adapters/reports/templates/): the facts a `Report` holds put into words, titles and the commands to
type included (`_sentences.txt.j2`)."""

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context
from markupsafe import Markup, escape

from rampup.adapters.reports.charts import marker_line, sparkline, svg_chart
from rampup.adapters.reports.labels import metric_label, percent_text, value_text
from rampup.core.durations import format_duration
from rampup.core.reports import Chart, MetricRow, Reception, Report

__all__ = ["JinjaRenderer", "people_name"]

TEMPLATES = Path(__file__).parent / "templates"
SPARK_WIDTH = 48
_VERDICT = {
    "pass": "✅ pass",
    "warn": "⚠️ warn",
    "fail": "🚨 fail",
    "critical": "🚨 critical",
    "inconclusive": "⏳ inconclusive",
}
_STATUS = {
    "normal": "✅ NORMAL",
    "waiting": "⏳ AWAITING APPROVAL",
    "watch": "⚠️ WATCH",
    "breaching": "🚨 BREACHING",
    "paused": "⏸️ PAUSED",
    "rolled_back": "🚨 ROLLED BACK",
    "disabled": "🚨 DISABLED",
    "completed": "✅ COMPLETED",
    "aborted": "⛔ ABORTED",
    "not_started": "⏳ NOT STARTED",
}
# A value's variant in a sentence: "0.04% with the feature, 0.03% without", "12 across all users".
_IN_WORDS = {"on": "with the feature", "off": "without", "all": "across all users"}
# How the support e-mail qualifies a value, from its gate's verdict.
_PLAIN = {
    "pass": "normal",
    "warn": "above target",
    "fail": "above the rollback limit",
    "critical": "above the disable limit",
    "inconclusive": "not enough data yet",
}


@pass_context
def _when(ctx: Context, at: datetime | None) -> str:
    return "—" if at is None else f"{at.astimezone(ctx['zone']):%Y-%m-%d %H:%M}"


@pass_context
def _day(ctx: Context, at: datetime) -> str:
    return at.astimezone(ctx["zone"]).date().isoformat()


@pass_context
def _week(ctx: Context, at: datetime) -> str:
    year, week, _ = at.astimezone(ctx["zone"]).isocalendar()
    return f"{year}-W{week:02d}"


def people_name(plan_name: str) -> str:
    """workstation-rollout → Workstation Rollout, as people call it."""
    words = plan_name.replace("-", " ").replace("_", " ").split()
    name = " ".join(w[:1].upper() + w[1:] for w in words)
    return name if name.lower().endswith("rollout") else f"{name} Rollout"


def _since(report: Report, at: datetime | None, until: datetime | None = None) -> str:
    return "—" if at is None else format_duration((until or report.generated_at) - at, "long")


def _target(row: MetricRow) -> str:
    text = row.target or row.thresholds or "no gate"
    relative = {"control": " vs control", "baseline": " vs the week before"}.get(row.compare, "")
    return text + relative if row.thresholds else text


def _judged(row: MetricRow) -> str:
    """The gate's measurement: value, confidence bounds and samples."""
    if row.gate is None or row.verdict is None:
        return "not judged"
    unit = "relative" if row.compare != "absolute" and not row.difference else row.unit
    bounds = (
        f" [{value_text(row.gate.lower, unit)} – {value_text(row.gate.upper, unit)}]"
        if row.gate.lower is not None and row.gate.upper is not None
        else ""
    )
    return f"{value_text(row.gate.value, unit)}{bounds}, n = {row.gate.samples:,}"


def _code(text: str) -> Markup:
    """Escaped text whose `backticked` commands become <code>."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text))))


_MARKDOWN = re.compile(r"([\\`*_\[\]#|~!<>&])")


def _quoted(text: str) -> str:
    """A user's words in Markdown: every character Markdown or HTML would act on is escaped, so a comment can
    never become a link, an image, a tag or a script wherever the Markdown is rendered."""
    return _MARKDOWN.sub(
        lambda m: {"<": "&lt;", ">": "&gt;", "&": "&amp;"}.get(m.group(1), "\\" + m.group(1)), text
    )


def _window_span(report: Report) -> str:
    end = report.end.astimezone(ZoneInfo(report.timezone))
    return f"{format_duration(report.end - report.start, 'long')} to {end:%Y-%m-%d %H:%M}"


def _spark(chart: Chart) -> dict[str, Any]:
    """A sparkline per variant on one scale, names aligned, stage changes marked underneath."""
    values = [v for series in chart.series.values() for v in series if v is not None]
    low, high = min(values, default=0.0), max(values, default=0.0)
    pad = max((len(v) for v in chart.series), default=0)
    lines = [(variant, sparkline(series, low, high, SPARK_WIDTH)) for variant, series in chart.series.items()]
    block = [f"{variant:<{pad}}  {line}" for variant, line in lines]
    width = max((len(line) for _, line in lines), default=0)
    if chart.markers and width:
        block.append(" " * (pad + 2) + marker_line(chart, width))
    return {"chart": chart, "block": "\n".join(block), "low": low, "high": high, "has_data": bool(values)}


# What a report says about its users, a line each, in this order (macros of _sentences.txt.j2).
_RECEPTION = ("received", "satisfaction", "positive", "trend", "engagement", "tickets")


class JinjaRenderer:
    def __init__(self) -> None:
        self._env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(["html.j2"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._env.filters.update(
            value=value_text,
            percent=percent_text,
            when=_when,
            day=_day,
            verdict=lambda v: _VERDICT.get(v or "", "—"),
            plain=lambda v: _PLAIN.get(v or "", ""),
            status=lambda s: _STATUS.get(s, s),
            num=lambda x: f"{x:g}",
            words=lambda s: s.replace("_", " "),
            code=_code,
            quoted=_quoted,
            week=_week,
            people=people_name,
            label=metric_label,
            span=format_duration,
            action=self._sentence("action"),
            incident=self._sentence("incident"),
            contact=self._sentence("contact"),
            reception=self._reception,
        )
        self._env.globals.update(
            target=_target, judged=_judged, since=_since, window_span=_window_span, variant_names=_IN_WORDS
        )

    def _say(self, zone: ZoneInfo, macro: str, *args: Any) -> str:
        """A sentence of _sentences.txt.j2 as plain text (a str, not Markup: an HTML template escapes it)."""
        module = self._env.get_template("_sentences.txt.j2").make_module({"zone": zone})
        return str(getattr(module, macro)(*args)).strip()

    def title(self, report: Report) -> str:
        """The e-mail subject."""
        return self._say(ZoneInfo(report.timezone), "title", report)

    def _sentence(self, macro: str) -> Callable[..., str]:
        """A filter saying a fact (a next step, an incident) with one of _sentences.txt.j2's macros."""

        @pass_context
        def say(ctx: Context, *args: Any) -> str:
            return self._say(ctx["zone"], macro, *args)

        return say

    @pass_context
    def _reception(self, ctx: Context, reception: Reception) -> list[str]:
        return [line for name in _RECEPTION if (line := self._say(ctx["zone"], name, reception))]

    def _words(self, report: Report) -> dict[str, Any]:
        """What every template of a report is rendered with besides its own pieces."""
        zone = ZoneInfo(report.timezone)
        return {
            "r": report,
            "zone": zone,
            "rows": {m.metric: m for m in report.metrics},
            "title": self._say(zone, "title", report),
            "heading": self._say(zone, "heading", report),
        }

    def markdown(self, report: Report) -> str:
        return self._env.get_template(f"{report.kind}.md.j2").render(
            **self._words(report), charts=[_spark(c) for c in report.charts]
        )

    def html(self, report: Report) -> str:
        zone = ZoneInfo(report.timezone)

        def svg(chart: Chart) -> Markup:
            return Markup(
                svg_chart(chart, zone, lambda v: value_text(v, chart.unit))
            )  # svg_chart escapes its text

        return self._env.get_template(f"{report.kind}.html.j2").render(
            **self._words(report), charts=[{"chart": c, "svg": svg(c)} for c in report.charts]
        )
