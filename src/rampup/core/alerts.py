"""Alert rules and their life: a metric condition over a trailing window, sustained `for` a while, fires;
it resolves when the condition clears; while firing it is re-sent every `renotify`.

Unlike gates (statistical verdicts over a stage), alert rules are what on-call people write in Sentry or
Grafana: the value over the last few minutes against a number. They tell; the gates act.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from rampup.core.durations import format_duration, parse_duration
from rampup.core.notifications import Severity
from rampup.core.telemetry import BUILTIN_METRICS, Aggregation, parse_metric_name
from rampup.core.thresholds import Written, check_own, parse_threshold
from rampup.errors import InvalidInput

__all__ = ["AlertRule", "AlertRuleRecord", "Alert", "Step", "AlertAction", "step"]


class AlertAction(StrEnum):
    FIRE = "fire"
    RENOTIFY = "renotify"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class AlertRule:
    name: str
    environment: str
    metric: str
    op: str
    threshold: float  # in the metric's unit: a fraction for rates, ms for latencies, a count for counts
    condition_text: str
    window: timedelta = timedelta(minutes=5)
    sustain: timedelta = timedelta(0)
    severity: Severity = Severity.WARNING
    channels: tuple[str, ...] = ()
    flag: str | None = None
    variant: str | None = None  # default: the flag's "on" variant, or the whole environment without a flag
    tags: tuple[tuple[str, str], ...] = ()
    renotify: timedelta | None = timedelta(hours=1)

    @property
    def subject(self) -> str:
        """Which variant of which flag (or the environment) the rule watches."""
        return "all" if self.flag is None else (self.variant or "on")

    def describe(self) -> str:
        held = f" for {format_duration(self.sustain)}" if self.sustain else ""
        scope = f"{self.flag}={self.subject}" if self.flag else "all traffic"
        tags = "".join(f", {k}={v}" for k, v in self.tags)
        return (
            f"{self.metric} {self.condition_text} over {format_duration(self.window)}{held} ({self.environment}, "
            f"{scope}{tags})"
        )

    def holds(self, value: float | None) -> bool:
        return value is not None and (value > self.threshold if self.op == ">" else value < self.threshold)

    @classmethod
    def parse(
        cls, body: Mapping[str, Any], defaults: Mapping[str, Any] | None = None, where: str = ""
    ) -> "AlertRule":
        raw = {**(defaults or {}), **body}
        at = f"{where}." if where else ""
        known = {
            "name",
            "environment",
            "metric",
            "condition",
            "window",
            "for",
            "severity",
            "channels",
            "flag",
            "variant",
            "tags",
            "renotify",
        }
        unknown = sorted(set(body) - known)
        if unknown:
            raise InvalidInput(
                f"unknown alert field {unknown[0]!r}; a rule has " + ", ".join(sorted(known)),
                where=f"{at}{unknown[0]}",
            )
        metric = raw.get("metric")
        written = _condition(metric, raw.get("condition", ""), at)
        name = raw.get("name") or f"{metric} {written.text}"
        environment = raw.get("environment")
        if not isinstance(environment, str) or not environment:
            raise InvalidInput("environment is needed", where=f"{at}environment")
        try:
            severity = Severity(raw.get("severity", "warning"))
        except ValueError:
            raise InvalidInput("severity is info, warning or critical", where=f"{at}severity") from None
        channels, tags = _channels(raw, at), _tags(raw, at)
        flag, variant = raw.get("flag"), raw.get("variant")
        if variant is not None and flag is None:
            raise InvalidInput("a variant belongs to a flag: give 'flag' too", where=f"{at}variant")
        window = parse_duration(raw.get("window", "5m"), f"{at}window")
        if not timedelta(seconds=1) <= window <= timedelta(days=7):
            raise InvalidInput("window is from 1s to 7d", where=f"{at}window")
        renotify = raw.get("renotify", "1h")
        return cls(
            str(name)[:200],
            environment,
            str(metric),
            written.op,
            written.value,
            written.text,
            window,
            parse_duration(raw["for"], f"{at}for") if "for" in raw else timedelta(0),
            severity,
            channels,
            flag,
            variant,
            tags,
            None if renotify in (None, "never") else parse_duration(renotify, f"{at}renotify"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "environment": self.environment,
            "metric": self.metric,
            "condition": self.condition_text,
            "window": format_duration(self.window),
            **({"for": format_duration(self.sustain)} if self.sustain else {}),
            "severity": self.severity.value,
            "channels": list(self.channels),
            "flag": self.flag,
            "variant": self.variant,
            "tags": dict(self.tags),
            "renotify": format_duration(self.renotify) if self.renotify else "never",
        }


def _condition(metric: Any, condition: Any, at: str) -> Written:
    """The rule's condition, in the unit of a metric one can alert on."""
    base, quantile = parse_metric_name(metric) if isinstance(metric, str) else ("", None)
    spec = BUILTIN_METRICS.get(base)
    if spec is None or (spec.aggregation is Aggregation.PERCENTILE) != (quantile is not None):
        raise InvalidInput(
            f"metric {metric!r} is not one to alert on; e.g. error_rate, unhandled_exceptions, "
            "api_latency_p95, lcp_p75",
            where=f"{at}metric",
        )
    written = parse_threshold(condition, f"{at}condition", "'> 0.5%', '> 5' or '> 1000ms'")
    check_own(written, spec.aggregation, condition, f"{at}condition")
    if written.unit == "%" and spec.aggregation is not Aggregation.RATE:
        # Gates let this through (plans stored before would no longer load); a new rule need not.
        raise InvalidInput(
            f"{condition!r} is a percentage, but {metric} is not a rate; write a number, e.g. '> 5'",
            where=f"{at}condition",
        )
    return written


def _channels(raw: Mapping[str, Any], at: str) -> tuple[str, ...]:
    channels = raw.get("channels", [])
    if not isinstance(channels, list) or not all(isinstance(c, str) and c for c in channels):
        raise InvalidInput("channels is a list of channel names", where=f"{at}channels")
    return tuple(channels)


def _tags(raw: Mapping[str, Any], at: str) -> tuple[tuple[str, str], ...]:
    tags = raw.get("tags") or {}
    if not isinstance(tags, Mapping) or not all(isinstance(v, str) for v in tags.values()):
        raise InvalidInput('tags filter by exact values: {"route": "/checkout"}', where=f"{at}tags")
    return tuple(sorted(tags.items()))


@dataclass(frozen=True, slots=True)
class AlertRuleRecord:
    id: int
    rule: AlertRule
    rollout_id: int | None  # a plan's rule: watched only while that rollout runs
    breaching_since: datetime | None


@dataclass(frozen=True, slots=True)
class Alert:
    """One firing of a rule, from the moment it fired until it resolved."""

    id: int
    rule_id: int
    value: float | None  # at the last evaluation that changed it
    started_at: datetime
    last_notified_at: datetime
    resolved_at: datetime | None = None

    @property
    def state(self) -> str:
        return "firing" if self.resolved_at is None else "resolved"


@dataclass(frozen=True, slots=True)
class Step:
    breaching_since: datetime | None
    action: AlertAction | None = None


def step(
    rule: AlertRule,
    value: float | None,
    breaching_since: datetime | None,
    firing_since: datetime | None,
    last_notified: datetime | None,
    now: datetime,
) -> Step:
    """One evaluation. `firing_since` is None when no alert is open for the rule."""
    if not rule.holds(value):
        return Step(None, AlertAction.RESOLVE if firing_since is not None else None)
    since = breaching_since or now
    if firing_since is None:
        return Step(since, AlertAction.FIRE if now - since >= rule.sustain else None)
    due = rule.renotify is not None and last_notified is not None and now - last_notified >= rule.renotify
    return Step(since, AlertAction.RENOTIFY if due else None)
