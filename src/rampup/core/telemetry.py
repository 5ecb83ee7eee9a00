"""Telemetry: what happened to users, as observations, and what each one adds to which metric.

Every source (native events, Sentry envelopes, counters posted from outside) is decoded into
Observations; `contributions` is the one place that says which metric an observation feeds.
"""

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from rampup.core.feedback import MIN_RATINGS, POSITIVE
from rampup.core.stats import Estimate
from rampup.errors import InvalidInput

__all__ = [
    "Kind",
    "Observation",
    "Aggregation",
    "MetricSpec",
    "VariantValue",
    "SeriesPoint",
    "MetricResult",
    "BUILTIN_METRICS",
    "Contribution",
    "contributions",
    "ALL_USERS",
    "parse_metric_name",
    "CustomMetric",
    "CUSTOM_AGGREGATIONS",
]

ALL_USERS = ""  # the flag slot of environment-wide rollups: every event, whatever its flags


class Kind(StrEnum):
    REQUEST = "request"  # a unit of work: ok or failed, with a duration
    EXPOSURE = "exposure"  # a user saw a variant
    ERROR = "error"  # an exception, handled or not
    PAGE_LOAD = "page_load"  # a page load with its Largest Contentful Paint
    CUSTOM = "custom"  # anything named by the user; may count as engagement
    DATA_LOSS = "data_loss"  # data was lost: always a reason to roll back
    SESSION = "session"  # a Sentry session: ok, or errored / crashed / abnormal
    COUNTER = "counter"  # a count posted from outside (support tickets)
    GAUGE = "gauge"  # a reading posted from outside (Lighthouse score)
    FEEDBACK = "feedback"  # a user's rating (a score from 1 to 5, see feedback.py) and comment


@dataclass(slots=True)
class Observation:
    kind: Kind
    at_ms: int
    targeting_key: str | None = None
    flags: Mapping[str, Any] | None = None  # flag key → value or variant name, as the client saw it
    value: float | None = None  # duration_ms, lcp_ms, a custom value, a counter increment, a gauge reading
    failed: bool = False  # request not ok; session errored; error unhandled
    name: str | None = None  # custom event name, exposed flag, counter or gauge metric
    variant: str | None = None  # exposure variant
    engagement: bool = False
    tags: Mapping[str, str] | None = None
    message: str | None = None  # an error's message; a feedback's comment
    event_id: str | None = None  # a Sentry event's id, so feedback can name it; not kept with raw events
    refers_to: str | None = None  # feedback: the event it is about, to take that event's user and flags
    count: int = 1  # how many alike it stands for: a Sentry sessions aggregate's count, kept as a count


class Aggregation(StrEnum):
    RATE = "rate"  # failures / units, e.g. error_rate
    RATIO = "ratio"  # events of one kind / events of another, e.g. checkouts per page view
    COUNT = "count"  # events in a window
    PERCENTILE = "percentile"  # from a latency sketch: api_latency_p95, lcp_p75
    MEAN = "mean"  # mean of values
    PER_USER = "per_user"  # events per exposed user, e.g. engagement
    SUM = "sum"  # sum of posted increments, e.g. support_tickets
    GAUGE = "gauge"  # latest reading and mean, e.g. lighthouse


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    aggregation: Aggregation
    unit: str
    description: str
    # Gates read the whole environment, not the treatment (data loss: any at all).
    environment_wide: bool = False
    counted: str = "failures"  # what a rate's numerator counts, as the metrics API names it
    min_samples: int = 0  # a gate on this metric is inconclusive below this many samples per variant


@dataclass(frozen=True, slots=True)
class VariantValue:
    """A variant's value over a window with the counts behind it; a count is None where the metric has none."""

    estimate: Estimate
    count: int
    counted: int | None = None  # a rate's numerator, named by its spec's `counted` (failures, positive)
    users: int | None = None  # per-user metrics: the users counted
    mean: float | None = None  # gauges: the mean of the readings (the value is the last one)
    denominator: int | None = None  # ratios: the denominator's count


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    at: datetime
    estimates: Mapping[str, Estimate]  # per variant that had data at this point


@dataclass(frozen=True, slots=True)
class MetricResult:
    """A metric per variant over a window, and its series."""

    metric: str
    spec: MetricSpec
    environment: str
    flag: str | None
    window: timedelta
    start: datetime
    end: datetime
    variants: Mapping[str, VariantValue]
    series: tuple[SeriesPoint, ...]


BUILTIN_METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec(
            "error_rate",
            Aggregation.RATE,
            "fraction",
            "failed units / all units (requests, sessions, transactions)",
        ),
        MetricSpec("unhandled_exceptions", Aggregation.COUNT, "count", "exceptions nobody caught"),
        MetricSpec("errors", Aggregation.COUNT, "count", "error events, handled or not"),
        MetricSpec("api_latency", Aggregation.PERCENTILE, "ms", "request duration; ask for api_latency_pNN"),
        MetricSpec("lcp", Aggregation.PERCENTILE, "ms", "Largest Contentful Paint; ask for lcp_pNN"),
        MetricSpec(
            "engagement",
            Aggregation.PER_USER,
            "actions/user",
            "engaged actions per exposed user",
            min_samples=30,  # ten users who did nothing prove nothing, however narrow their interval
        ),
        MetricSpec("exposures", Aggregation.COUNT, "count", "exposure events"),
        MetricSpec("support_tickets", Aggregation.SUM, "count", "a counter posted from outside"),
        MetricSpec("lighthouse", Aggregation.GAUGE, "score", "a gauge posted from outside"),
        MetricSpec("data_loss", Aggregation.COUNT, "count", "data-loss events", environment_wide=True),
        MetricSpec(
            "satisfaction",
            Aggregation.MEAN,
            "of 5",
            "mean feedback rating, every scale brought to 1-5",
            min_samples=MIN_RATINGS,
        ),
        MetricSpec(
            "satisfaction_positive",
            Aggregation.RATE,
            "fraction",
            "share of feedback ratings that are positive (4 or 5 of 5, a thumbs-up)",
            counted="positive",
            min_samples=MIN_RATINGS,
        ),
        MetricSpec("feedback", Aggregation.COUNT, "count", "feedback received, rated or not"),
    )
}


def parse_metric_name(name: str) -> tuple[str, float | None]:
    """'api_latency_p95' → ('api_latency', 0.95); 'error_rate' → ('error_rate', None)."""
    base, _, suffix = name.rpartition("_p")
    if base and suffix.replace(".", "", 1).isdigit() and 0 < float(suffix) < 100:
        return base, float(suffix) / 100
    return name, None


CUSTOM_AGGREGATIONS = (
    Aggregation.COUNT,
    Aggregation.PER_USER,
    Aggregation.RATIO,
    Aggregation.MEAN,
    Aggregation.PERCENTILE,
)
_METRIC_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}\Z")


@dataclass(frozen=True, slots=True)
class CustomMetric:
    """A metric users define over their own `custom` events: which events, which tags, how to aggregate."""

    name: str
    event: str
    aggregation: Aggregation
    tags: tuple[tuple[str, str], ...] = ()
    denominator: str | None = None  # for ratios: another event name
    unit: str = ""
    description: str = ""

    @property
    def rollup(self) -> str:
        return f"metric:{self.name}"

    @property
    def spec(self) -> MetricSpec:
        return MetricSpec(self.rollup, self.aggregation, self.unit, self.description)

    def matches(self, o: Observation) -> bool:
        return o.name == self.event and all((o.tags or {}).get(k) == v for k, v in self.tags)

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> "CustomMetric":
        name = body.get("name")
        if (
            not isinstance(name, str)
            or not _METRIC_NAME.match(name)
            or parse_metric_name(name)[1] is not None
        ):
            raise InvalidInput("name must match ^[a-z][a-z0-9_]{0,63}$ and not end in _pNN", where="name")
        if name in BUILTIN_METRICS:
            raise InvalidInput(f"{name!r} is a built-in metric", where="name")
        event = body.get("event")
        if not isinstance(event, str) or not event or len(event) > 200:
            raise InvalidInput("event must name the custom events to count (1–200 characters)", where="event")
        try:
            aggregation = Aggregation(body.get("aggregation", "count"))
        except ValueError:
            aggregation = None
        if aggregation not in CUSTOM_AGGREGATIONS:
            raise InvalidInput(
                "aggregation must be one of " + ", ".join(a.value for a in CUSTOM_AGGREGATIONS),
                where="aggregation",
            )
        tags = body.get("tags") or {}
        if not isinstance(tags, Mapping) or not all(isinstance(v, str) for v in tags.values()):
            raise InvalidInput('tags filter events by exact tag values: {"plan": "pro"}', where="tags")
        denominator = body.get("denominator")
        if (aggregation is Aggregation.RATIO) != isinstance(denominator, str) or denominator == "":
            raise InvalidInput(
                "a ratio needs 'denominator' (the event name to divide by); other metrics take none",
                where="denominator",
            )
        unit, description = body.get("unit", ""), body.get("description", "")
        if not isinstance(unit, str) or not isinstance(description, str):
            raise InvalidInput("unit and description are strings", where="unit")
        return cls(name, event, aggregation, tuple(sorted(tags.items())), denominator, unit, description)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "event": self.event,
            "aggregation": self.aggregation.value,
            "tags": dict(self.tags),
            "denominator": self.denominator,
            "unit": self.unit,
            "description": self.description,
        }


# (metric, failed, value, sketched): what one observation adds to one metric; `sketched`: the value goes into a
# quantile sketch. A plain tuple, and the fixed ones made once: made for every event, where a NamedTuple's
# constructor cost several times as much as the rest of `contributions`.
Contribution = tuple[str, bool, float | None, bool]
Contributions = tuple[Contribution, ...]

_REQUEST_OK: Contributions = (("error_rate", False, None, False),)
_REQUEST_FAILED: Contributions = (("error_rate", True, None, False),)
_ERROR: Contributions = (("errors", False, None, False),)
_UNHANDLED: Contributions = (("errors", False, None, False), ("unhandled_exceptions", False, None, False))
_FEEDBACK: Contributions = (("feedback", False, None, False),)


def contributions(o: Observation, custom: Iterable[CustomMetric] = ()) -> Contributions:
    return _FEEDS[o.kind](o, custom)


def _request(o: Observation, _custom: Iterable[CustomMetric]) -> Contributions:
    judged = _REQUEST_FAILED if o.failed else _REQUEST_OK
    if o.value is None:
        return judged
    return judged[0], ("api_latency", False, o.value, True)


def _session(o: Observation, _custom: Iterable[CustomMetric]) -> Contributions:
    return _REQUEST_FAILED if o.failed else _REQUEST_OK


def _error(o: Observation, _custom: Iterable[CustomMetric]) -> Contributions:
    return _UNHANDLED if o.failed else _ERROR


def _page_load(o: Observation, _custom: Iterable[CustomMetric]) -> Contributions:
    return () if o.value is None else (("lcp", False, o.value, True),)


def _custom_event(o: Observation, custom: Iterable[CustomMetric]) -> Contributions:
    fed: list[Contribution] = [(f"event:{o.name}", False, o.value, False)]
    if o.engagement:
        fed.append(("engagement", False, o.value, False))
    for metric in custom:
        if metric.matches(o):
            sketched = metric.aggregation is Aggregation.PERCENTILE and o.value is not None
            fed.append((metric.rollup, False, o.value, sketched))
    return tuple(fed)


def _feedback(o: Observation, _custom: Iterable[CustomMetric]) -> Contributions:
    if o.value is None:
        return _FEEDBACK
    # A rate's "failures" slot holds the positive ratings here: the share is what the rate computes.
    return (
        _FEEDBACK[0],
        ("satisfaction", False, o.value, False),
        ("satisfaction_positive", o.value >= POSITIVE, None, False),
    )


def _named(metric: str) -> Callable[[Observation, Iterable[CustomMetric]], Contributions]:
    fed: Contributions = ((metric, False, None, False),)
    return lambda _o, _custom: fed


def _reading(o: Observation, _custom: Iterable[CustomMetric]) -> Contributions:
    return ((o.name or "", False, o.value, False),)


# What each kind of observation feeds (the table in tests/unit/core/test_telemetry.py checks every kind).
_FEEDS: dict[Kind, Callable[[Observation, Iterable[CustomMetric]], Contributions]] = {
    Kind.REQUEST: _request,
    Kind.SESSION: _session,
    Kind.ERROR: _error,
    Kind.PAGE_LOAD: _page_load,
    Kind.CUSTOM: _custom_event,
    Kind.EXPOSURE: _named("exposures"),
    Kind.DATA_LOSS: _named("data_loss"),
    Kind.COUNTER: _reading,
    Kind.GAUGE: _reading,
    Kind.FEEDBACK: _feedback,
}
