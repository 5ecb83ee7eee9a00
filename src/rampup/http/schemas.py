"""Request and response bodies of the admin API, for validation and for /openapi.json."""

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainValidator,
    StrictBool,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from rampup.core.flags import FlagType
from rampup.core.lifecycle import FlagKind
from rampup.core.notifications import ChannelType, Severity
from rampup.core.plans import OnTimeout
from rampup.core.scheduled_changes import ChangeStatus
from rampup.core.schedules import ReportKind
from rampup.core.segments import MAX_KEY_LENGTH, MAX_SEGMENT_CONDITIONS, MAX_SEGMENT_KEYS
from rampup.core.targeting import Operator
from rampup.core.telemetry import CUSTOM_AGGREGATIONS, Aggregation
from rampup.core.tokens import Scope

__all__ = [
    "ErrorOut",
    "EnvironmentIn",
    "EnvironmentOut",
    "VariantIn",
    "FlagIn",
    "FlagPatch",
    "ConditionIn",
    "RuleIn",
    "StateChangeIn",
    "FlagStateIn",
    "ScheduledChangeIn",
    "ScheduledChangeOut",
    "FlagStateOut",
    "SwitchOffOut",
    "FlagOut",
    "KillIn",
    "TokenIn",
    "TokenOut",
    "TokenCreated",
    "AuditOut",
    "SegmentIn",
    "SegmentPatch",
    "SegmentOut",
    "SegmentDetailOut",
]

Scalar = str | float | int | bool
ChannelName = Annotated[str, Field(min_length=1, max_length=64)]
StrictInt = Annotated[int, Field(strict=True)]
Text = Annotated[str, Field(max_length=200)]
DurationText = Annotated[str, Field(max_length=32, examples=["5m"])]


@dataclass(frozen=True, slots=True)
class Among:
    """Narrows a core enum to some of its members, in validation and in the schema: `Annotated[Aggregation,
    Among(CUSTOM_AGGREGATIONS)]` accepts those values as the core spells them, and nothing else."""

    members: tuple[StrEnum, ...]

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(
        self, _schema: CoreSchema, _handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "enum": [m.value for m in self.members]}

    def _check(self, value: StrEnum) -> StrEnum:
        if value not in self.members:
            raise ValueError("use one of: " + ", ".join(m.value for m in self.members))
        return value


def _storable(value: Any, where: str) -> None:
    """Refuse what no database stores faithfully: NUL characters (PostgreSQL text) and non-finite numbers."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError(f"{where or 'a string'} contains a NUL character")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where or 'a number'} is not a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            _storable(key, where)
            _storable(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _storable(item, f"{where}[{i}]")


# A number, never coerced: `true` or "50" is a mistake to name, not a 1% or 50% rollout to serve.
Percentage = Annotated[float, Field(strict=True, ge=0, le=100)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _only_storable(cls, data: Any) -> Any:
        _storable(data, "")
        return data


class ErrorDetail(BaseModel):
    code: str
    message: str
    where: str | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail


class EnvironmentIn(Strict):
    key: str = Field(max_length=128, examples=["qa"])
    name: str | None = Field(default=None, max_length=200)


class EnvironmentPatch(Strict):
    key: str | None = Field(default=None, max_length=128)
    name: str | None = Field(default=None, max_length=200)


class EnvironmentOut(BaseModel):
    id: int
    key: str
    name: str


class VariantIn(Strict):
    name: str = Field(min_length=1, max_length=128)
    value: Any


class FlagIn(Strict):
    key: str = Field(max_length=128, examples=["workstation"])
    description: str = Field(default="", max_length=10_000)
    type: FlagType = FlagType.BOOLEAN
    variants: list[VariantIn] | None = None
    off_variant: str | None = None
    kind: FlagKind | None = None
    notify: list[ChannelName] | None = Field(default=None, max_length=20)
    tags: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=20)
    owner: str | None = Field(default=None, max_length=200)


class FlagPatch(Strict):
    description: str | None = Field(default=None, max_length=10_000)
    tags: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=20)
    owner: str | None = Field(default=None, max_length=200)
    kind: FlagKind | None = None
    notify: list[ChannelName] | None = Field(
        default=None, max_length=20, description="channels told of the flag's status changes"
    )


class ConditionIn(Strict):
    attribute: str | None = Field(
        default=None, min_length=1, max_length=200, description="none for in_segment and not_in_segment"
    )
    operator: str
    values: list[Scalar] = Field(min_length=1, max_length=10_000)


class RuleIn(Strict):
    conditions: list[ConditionIn] | None = Field(default=None, min_length=1, max_length=100)
    # A single condition may be written inline instead of `conditions`.
    attribute: str | None = Field(default=None, min_length=1, max_length=200)
    operator: str | None = None
    values: list[Scalar] | None = Field(default=None, min_length=1, max_length=10_000)
    variant: str = "on"
    rollout: Percentage | None = Field(
        default=None, description="serve a percentage split instead of one variant"
    )


class PrerequisiteIn(Strict):
    flag: str = Field(min_length=1, max_length=128)
    variant: str = Field(default="on", min_length=1, max_length=128)


class PrerequisiteOut(BaseModel):
    flag: str
    variant: str


class StateChangeIn(Strict):
    """The fields of a flag's state in one environment, each optional: what a change sets."""

    enabled: StrictBool | None = None
    rollout: Percentage | None = Field(default=None, examples=[25])
    rules: list[RuleIn] | None = Field(default=None, max_length=1000)
    salt: str | None = Field(default=None, min_length=1, max_length=200)
    weights: dict[str, Annotated[float, Field(strict=True)]] | None = None
    bucket_by: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="context attribute to bucket by (account_id); targetingKey for the targeting key",
    )
    prerequisites: list[PrerequisiteIn | Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        default=None, max_length=20, description="flags that must give this variant to the user first"
    )


class FlagStateIn(StateChangeIn):
    version: int | None = Field(default=None, description="expected current version; 409 if it moved")
    reason: str | None = Field(default=None, max_length=10_000)


class ScheduledChangeIn(Strict):
    flag: str = Field(min_length=1, max_length=128)
    environment: str = Field(min_length=1, max_length=64)
    at: str = Field(
        min_length=1,
        max_length=64,
        description="local date and time in `timezone` (2026-12-07 09:00), with an offset to pick one of a "
        "repeated hour; HH:MM or monday 09:00 for the next one",
        examples=["2026-12-07 09:00"],
    )
    timezone: str = Field(default="UTC", min_length=1, max_length=64, examples=["Europe/Berlin"])
    change: StateChangeIn
    notify: list[ChannelName] = Field(
        default=[], max_length=20, description="channels told, besides the flag's"
    )
    reason: str = Field(default="", max_length=10_000)


class ScheduledChangeOut(BaseModel):
    id: int
    flag: str
    environment: str
    change: dict[str, Any]
    at: datetime
    local_at: str
    timezone: str
    notify: list[str]
    reason: str
    status: ChangeStatus
    created_by: str
    created_at: datetime
    finished_at: datetime | None
    finished_by: str | None = Field(
        description="the worker that made or failed it, or the token that cancelled it"
    )
    outcome: str = Field(description="why it failed or was cancelled")


class AttributeConditionOut(BaseModel):
    attribute: str
    operator: str
    values: list[Scalar]


class SegmentConditionOut(BaseModel):
    operator: Annotated[Operator, Among((Operator.IN_SEGMENT, Operator.NOT_IN_SEGMENT))]
    values: list[str] = Field(description="segment keys")


ConditionOut = AttributeConditionOut | SegmentConditionOut


class VariantRuleOut(BaseModel):
    conditions: list[ConditionOut]
    variant: str


class SplitRuleOut(BaseModel):
    conditions: list[ConditionOut]
    rollout: float


RuleOut = VariantRuleOut | SplitRuleOut  # a rule serves one variant or a percentage split


class SwitchOffOut(BaseModel):
    at: datetime
    actor: str = Field(description="the name of the token that switched the flag off")
    on_behalf_of: str | None = Field(description="whom that token said it acted for")
    reason: str
    how: str = Field(
        description="kill (`rampup flag kill`), disable (`rampup flag set --disable`), rollout (a rollout's "
        "disable: by hand or by a disable gate) or scheduled (a scheduled change)"
    )
    source_id: int | None = Field(description="the rollout's or the scheduled change's id; null otherwise")


class FlagStateOut(BaseModel):
    enabled: bool
    rollout: float
    rules: list[RuleOut]
    salt: str
    weights: dict[str, float]
    bucket_by: str | None = None
    prerequisites: list[PrerequisiteOut] = []
    version: int
    switched_off: SwitchOffOut | None = Field(
        None,
        description="the kill switch, while it stays pulled: who switched the flag off, when, why and how; "
        "nothing turns the flag on again but a person. Null while the flag is on or has never been on",
    )


class EnvironmentStateOut(FlagStateOut):
    flag: str
    environment: str


class VariantOut(BaseModel):
    name: str
    value: Any


class CodeReferenceOut(BaseModel):
    file: str
    line: int
    kind: str
    detail: str
    scope: str
    code: str


class ReferencesOut(BaseModel):
    scanned_at: datetime | None = Field(description="when `rampup refs --push` last reported; null: never")
    count: int
    items: list[CodeReferenceOut]


class FlagOut(BaseModel):
    key: str
    type: str
    description: str
    variants: list[VariantOut]
    off_variant: str
    tags: list[str] = []
    owner: str | None = None
    kind: str
    lifetime_days: int | None = Field(description="how long a flag of its kind should live; null: for good")
    notify: list[str]
    status: str = Field(
        description="the lifecycle status last announced: active, ready_for_cleanup, stale, archived"
    )
    status_since: datetime | None
    archived_at: datetime | None
    references: ReferencesOut
    created_at: datetime
    updated_at: datetime
    environments: dict[str, FlagStateOut]


class FlagLifeOut(BaseModel):
    flag: str
    kind: str
    status: str = Field(description="active, ready_for_cleanup, stale or archived")
    reasons: list[str] = Field(
        description="rollout_completed, past_lifetime, not_evaluated, permanent, archived"
    )
    reason: str = Field(description="the reasons in words")
    since: datetime | None = Field(description="when the status's reason began to hold")
    last_evaluated_at: datetime | None
    completed_at: datetime | None = Field(description="when its last rollout completed")
    archived_at: datetime | None
    references: int = Field(description="code references in the last push")
    scanned_at: datetime | None
    channels: list[str] = Field(description="who hears of its status changes")


class EvaluationDayOut(BaseModel):
    day: str
    count: int


class EnvironmentEvaluationsOut(BaseModel):
    total: int
    last_evaluated_at: datetime | None
    days: list[EvaluationDayOut]


class EvaluationsOut(BaseModel):
    flag: str
    days: int
    environments: dict[str, EnvironmentEvaluationsOut]


class ArchiveIn(Strict):
    force: StrictBool = Field(
        default=False, description="archive although the last pushed scan found it in code"
    )
    reason: str = Field(default="", max_length=10_000)


class KillIn(Strict):
    reason: str = Field(default="", max_length=10_000)


class TokenIn(Strict):
    scope: Scope
    environment: str | None = Field(default=None, max_length=128)
    name: str | None = Field(default=None, min_length=1, max_length=200)


class TokenOut(BaseModel):
    id: str
    name: str
    scope: str
    environment: str | None
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="the secret; shown only in this response")


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="the name of the token that made the change (or system, controller)")
    on_behalf_of: str | None = Field(default=None, description="whom the token said it acted for (`by`)")
    action: str
    target: str
    environment: str | None
    before: Any
    after: Any
    reason: str


class EstimateOut(BaseModel):
    value: float | None
    lower: float | None
    upper: float | None
    samples: int
    count: int
    failures: int | None = None
    positive: int | None = None  # satisfaction_positive: the positive ratings among `count`
    users: int | None = None
    mean: float | None = None


class SeriesPointOut(BaseModel):
    at: datetime
    values: dict[str, float | None]
    lower: dict[str, float | None] = {}  # 95% bounds of each variant's value at this point
    upper: dict[str, float | None] = {}


class MetricOut(BaseModel):
    metric: str
    aggregation: str
    unit: str
    environment: str
    flag: str | None
    window: str
    start: datetime
    end: datetime
    variants: dict[str, EstimateOut]
    series: list[SeriesPointOut]


class MetricPointIn(Strict):
    metric: str = Field(max_length=200, examples=["support_tickets"])
    environment: str = Field(max_length=128, examples=["production"])
    value: float = Field(allow_inf_nan=False)
    at: datetime | None = None


class CustomMetricIn(Strict):
    name: str = Field(max_length=64, examples=["checkouts"])
    event: str = Field(max_length=200, examples=["checkout"])
    aggregation: Annotated[Aggregation, Among(CUSTOM_AGGREGATIONS)] = Aggregation.COUNT
    tags: dict[str, str] | None = None
    denominator: str | None = Field(
        default=None, max_length=200, description="ratio only: the event to divide by"
    )
    unit: str = Field(default="", max_length=50)
    description: str = Field(default="", max_length=2000)


class CustomMetricOut(BaseModel):
    name: str
    event: str
    aggregation: str
    tags: dict[str, str]
    denominator: str | None
    unit: str
    description: str


class RolloutIn(Strict):
    plan: dict[str, Any] = Field(description='the plan as a JSON object, or {"yaml": "<the plan in YAML>"}')
    start: bool = True
    filename: str | None = Field(
        default=None, max_length=200, description="named in errors about a YAML plan"
    )


class BacktestIn(Strict):
    """Replay a plan's gates and controller over recorded telemetry."""

    plan: dict[str, Any] = Field(description='the plan as a JSON object, or {"yaml": "<the plan in YAML>"}')
    environment: str | None = Field(default=None, max_length=128, description="instead of the plan's")
    flag: str | None = Field(default=None, max_length=128, description="instead of the plan's")
    from_: datetime = Field(alias="from")
    to: datetime
    tick: str = Field(default="1m", max_length=32, description="the controller's tick in the replay")
    filename: str | None = Field(default=None, max_length=200)


class TransitionOut(BaseModel):
    # started, advanced, rolled_back, approved, waiting_for_data, environment_unhealthy, stepped_back, …
    kind: str | None = None
    at: datetime
    from_: str = Field(alias="from")
    to: str
    from_stage: int
    to_stage: int
    actor: str
    on_behalf_of: str | None = None
    reason: str
    evidence: list[dict[str, Any]]


class BacktestOut(BaseModel):
    plan: str
    flag: str
    environment: str
    from_: datetime = Field(alias="from")
    to: datetime
    tick_s: float
    decisions: list[TransitionOut]
    state: str
    stage: int


class RolloutCreated(BaseModel):
    id: int
    state: str


class ActionIn(Strict):
    reason: str = Field(default="", max_length=10_000)
    by: str | None = Field(
        default=None,
        max_length=200,
        description='the person the token acts for: recorded beside the token\'s name as "on behalf of"',
    )


class SignoffIn(Strict):
    prerequisite: str = Field(min_length=1, max_length=500)
    by: str | None = Field(default=None, max_length=200)


class StageStatusOut(BaseModel):
    number: int
    name: str
    percentage: float
    entered_at: datetime | None
    soak_remaining_s: float | None


class GateOut(BaseModel):
    metric: str
    verdict: str
    value: float | None
    lower: float | None
    upper: float | None
    samples: int
    threshold: str
    compare: str
    needs: dict[str, float] | None = None
    since_ms: int | None = None  # a breach seen on a restarted window: since when


class StageOut(BaseModel):
    number: int
    name: str
    percentage: float
    min_duration_s: float
    max_duration_s: float | None
    on_timeout: OnTimeout
    prerequisites: list[str]
    approval: bool


class SignoffOut(BaseModel):
    stage: int
    prerequisite: str
    by: str
    at: datetime


class StageForecastOut(BaseModel):
    """A stage's expected time to a decision at the traffic of the last day."""

    stage: int
    name: str
    soak_s: float
    expected_decision_s: float | None  # None: never at that traffic
    limited_by: str | None  # the gate that takes longest, when it takes longer than the soak


class SrmPowerOut(BaseModel):
    """A stage with a control: the smallest share of the treatment's users lost that the sample-ratio check
    typically catches, at the users of the last days."""

    stage: int
    name: str
    share: float
    soak_s: float
    users_day: float  # users the check counts in the stage's first whole day
    users_soak: float  # distinct users it counts over the soak
    caught_within_a_day: float | None  # None: not even losing them all
    caught_within_the_soak: float | None


class RolloutOut(BaseModel):
    id: int
    name: str
    flag: str
    environment: str
    state: str
    stage: StageStatusOut
    waiting_for: list[str]
    stages: list[StageOut]
    gates: list[GateOut]
    signoffs: list[SignoffOut]
    timeline: list[TransitionOut]
    actions: list[str] = []  # the commands the rollout's state allows now
    created_by: str
    created_at: datetime
    plan: dict[str, Any]
    forecast: list[StageForecastOut] = []
    srm_power: list[SrmPowerOut] = []


class ClockIn(Strict):
    """Move a manual clock forward by a duration or to an instant (with neither, it stays), then tick once."""

    advance: str | None = Field(default=None, max_length=32, examples=["5s", "48h"])
    to: datetime | None = None

    @model_validator(mode="after")
    def _one_move(self) -> "ClockIn":
        if self.advance is not None and self.to is not None:
            raise ValueError("give advance or to, not both")
        return self


class ClockOut(BaseModel):
    now: datetime
    manual: bool
    leader: bool | None = None  # after a move: whether this instance held the lease and ran the controller


class FeedbackOut(BaseModel):
    id: int
    at: datetime
    targeting_key: str | None
    rating: float | None = Field(description="as the user gave it, on `scale`")
    scale: str | None
    score: float | None = Field(description="the rating brought to 1-5")
    positive: bool | None
    comment: str | None = Field(description="plain text, as sent (at most 5,000 characters)")
    tags: dict[str, str]
    variants: dict[str, str] = Field(description="flag → variant the feedback is attributed to")
    source: str


class FeedbackPageOut(BaseModel):
    feedback: list[FeedbackOut]
    next_before: int | None = Field(description="pass as `before` for the next (older) page; null at the end")


class FeedbackPurgeOut(BaseModel):
    deleted: int


class ChannelIn(Strict):
    """Every channel type's fields; which ones a type takes, and what they must hold, the core checks."""

    name: str = Field(max_length=64)
    type: ChannelType
    min_severity: Severity = Field(default=Severity.INFO, description="what it gets: at least this bad")
    url: str | None = Field(default=None, max_length=2048, description="slack, webhook, pagerduty")
    secret: str | None = Field(default=None, max_length=1000, description="webhook: signs every delivery")
    host: str | None = Field(default=None, max_length=253, description="email: the SMTP server")
    port: StrictInt | None = None
    from_: str | None = Field(default=None, alias="from", max_length=320)
    to: list[Annotated[str, Field(max_length=320)]] | None = Field(default=None, max_length=100)
    starttls: StrictBool | None = None
    username: str | None = Field(default=None, max_length=1000)
    password: str | None = Field(default=None, max_length=1000)
    routing_key: str | None = Field(default=None, max_length=200, description="pagerduty")


class AlertRuleIn(Strict):
    name: Text | None = None
    environment: str = Field(max_length=128)
    metric: Text
    condition: str = Field(max_length=64, examples=["> 0.5%"])
    window: DurationText | None = None
    for_: DurationText | None = Field(
        default=None, alias="for", description="how long it holds before firing"
    )
    severity: Severity = Severity.WARNING
    channels: list[ChannelName] = Field(default=[], max_length=20)
    flag: str | None = Field(default=None, max_length=128)
    variant: str | None = Field(default=None, max_length=128)
    tags: dict[Text, Text] | None = Field(default=None, max_length=20)
    renotify: DurationText | None = Field(default=None, description='a duration, or "never"')


def _weekday(value: Any) -> int | str:
    # One validator, not a union of two: a wrong value is refused at `weekday`, not at `weekday.int`.
    if (
        isinstance(value, bool)
        or not isinstance(value, int | str)
        or (isinstance(value, str) and len(value) > 16)
    ):
        raise ValueError("a weekday is a number (0 = Monday) or a name")
    return value


Weekday = Annotated[
    int | str,
    PlainValidator(_weekday),
    WithJsonSchema(
        {
            "oneOf": [{"type": "integer"}, {"type": "string", "maxLength": 16}],
            "description": "0 = Monday, or a name",
        }
    ),
]


class ScheduleIn(Strict):
    kind: ReportKind
    rollout_id: StrictInt | None = None
    flag: str | None = Field(default=None, max_length=128)
    environment: str | None = Field(default=None, max_length=128)
    channels: list[ChannelName] = Field(max_length=20)
    hour: StrictInt | None = None
    minute: StrictInt | None = None
    timezone: str | None = Field(default=None, max_length=64, examples=["Europe/Berlin"])
    weekday: Weekday | None = None
    contact: Text | None = None


TargetingKey = Annotated[str, Field(min_length=1, max_length=MAX_KEY_LENGTH)]
TargetingKeys = Annotated[list[TargetingKey], Field(max_length=MAX_SEGMENT_KEYS)]
SegmentConditions = Annotated[list[ConditionIn], Field(max_length=MAX_SEGMENT_CONDITIONS)]


class SegmentIn(Strict):
    key: str = Field(max_length=128, examples=["beta-testers"])
    description: str = Field(default="", max_length=10_000)
    conditions: SegmentConditions = Field(
        default=[], description="a user is in the segment when all of them hold (and there is one)"
    )
    keys: TargetingKeys = Field(
        default=[], description="targeting keys in the segment, whatever the conditions"
    )


class SegmentPatch(Strict):
    description: str | None = Field(default=None, max_length=10_000)
    conditions: SegmentConditions | None = None
    keys: TargetingKeys | None = Field(default=None, description="the whole list, replacing the old one")
    add_keys: TargetingKeys | None = None
    remove_keys: TargetingKeys | None = None
    version: int | None = Field(default=None, description="expected current version; 409 if it moved")
    reason: str | None = Field(default=None, max_length=10_000)


class SegmentOut(BaseModel):
    key: str
    environment: str
    description: str
    conditions: list[ConditionOut]
    key_count: int
    version: int
    used_by: list[str] = Field(description="flags whose rules in this environment refer to the segment")
    created_at: datetime
    updated_at: datetime


class SegmentDetailOut(SegmentOut):
    keys: list[str]
