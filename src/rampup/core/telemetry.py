"""Telemetry: what happened to users, as observations, and what each one adds to which metric.

Every source (native events, Sentry envelopes, counters posted from outside) is decoded into
Observations; `contributions` is the one place that says which metric an observation feeds.
"""

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Kind", "Observation", "Aggregation", "MetricSpec", "BUILTIN_METRICS", "Contribution",
           "contributions", "ALL_USERS", "parse_metric_name"]

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
    message: str | None = None


class Aggregation(StrEnum):
    RATE = "rate"  # failures / units, e.g. error_rate
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


BUILTIN_METRICS: dict[str, MetricSpec] = {m.name: m for m in (
    MetricSpec("error_rate", Aggregation.RATE, "fraction", "failed units / all units (requests, sessions, "
               "transactions)"),
    MetricSpec("unhandled_exceptions", Aggregation.COUNT, "count", "exceptions nobody caught"),
    MetricSpec("errors", Aggregation.COUNT, "count", "error events, handled or not"),
    MetricSpec("api_latency", Aggregation.PERCENTILE, "ms", "request duration; ask for api_latency_pNN"),
    MetricSpec("lcp", Aggregation.PERCENTILE, "ms", "Largest Contentful Paint; ask for lcp_pNN"),
    MetricSpec("engagement", Aggregation.PER_USER, "actions/user", "engaged actions per exposed user"),
    MetricSpec("exposures", Aggregation.COUNT, "count", "exposure events"),
    MetricSpec("support_tickets", Aggregation.SUM, "count", "a counter posted from outside"),
    MetricSpec("lighthouse", Aggregation.GAUGE, "score", "a gauge posted from outside"),
    MetricSpec("data_loss", Aggregation.COUNT, "count", "data-loss events"),
)}


def parse_metric_name(name: str) -> tuple[str, float | None]:
    """'api_latency_p95' → ('api_latency', 0.95); 'error_rate' → ('error_rate', None)."""
    base, _, suffix = name.rpartition("_p")
    if base and suffix.replace(".", "", 1).isdigit() and 0 < float(suffix) < 100:
        return base, float(suffix) / 100
    return name, None


@dataclass(frozen=True, slots=True)
class Contribution:
    metric: str
    failed: bool = False
    value: float | None = None
    sketched: bool = False  # the value goes into a quantile sketch


def contributions(o: Observation) -> Iterator[Contribution]:
    match o.kind:
        case Kind.REQUEST:
            yield Contribution("error_rate", failed=o.failed)
            if o.value is not None:
                yield Contribution("api_latency", value=o.value, sketched=True)
        case Kind.SESSION:
            yield Contribution("error_rate", failed=o.failed)
        case Kind.ERROR:
            yield Contribution("errors")
            if o.failed:
                yield Contribution("unhandled_exceptions")
        case Kind.PAGE_LOAD:
            if o.value is not None:
                yield Contribution("lcp", value=o.value, sketched=True)
        case Kind.CUSTOM:
            yield Contribution(f"custom:{o.name}", value=o.value)
            if o.engagement:
                yield Contribution("engagement", value=o.value)
        case Kind.EXPOSURE:
            yield Contribution("exposures")
        case Kind.DATA_LOSS:
            yield Contribution("data_loss")
        case Kind.COUNTER | Kind.GAUGE:
            yield Contribution(o.name or "", value=o.value)
