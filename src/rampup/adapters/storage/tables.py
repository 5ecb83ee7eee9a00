"""Table definitions: the only file that names tables and columns."""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "metadata",
    "environments",
    "flags",
    "flag_states",
    "flag_history",
    "tokens",
    "sessions",
    "audit",
    "event_batches",
    "rollups",
    "unit_days",
    "unit_latency_days",
    "unit_day_packs",
    "unit_latency_packs",
    "metric_definitions",
    "rollouts",
    "rollout_transitions",
    "outbox",
    "leases",
    "channels",
    "alert_rules",
    "alerts",
    "report_schedules",
    "scheduled_changes",
    "feedback",
    "feedback_variants",
    "event_refs",
    "summary_ids",
    "flag_lifecycle",
    "flag_evaluations",
    "segments",
    "segment_keys",
]

metadata = MetaData()

Json = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")
Timestamp = DateTime(timezone=True)

environments = Table(
    "environments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(128), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

flags = Table(
    "flags",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(128), nullable=False, unique=True),
    Column("type", String(16), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("variants", Json, nullable=False),
    Column("off_variant", String(128), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("tags", Json, nullable=False, server_default="[]"),
    Column("owner", String(200), nullable=False, server_default=""),
)

flag_states = Table(
    "flag_states",
    metadata,
    Column("flag_id", Integer, ForeignKey("flags.id", ondelete="CASCADE"), primary_key=True),
    Column("environment_id", Integer, ForeignKey("environments.id", ondelete="CASCADE"), primary_key=True),
    Column("enabled", Boolean, nullable=False),
    Column("rollout_bp", Integer, nullable=False),
    Column("rules", Json, nullable=False),
    Column("salt", String(200), nullable=False),
    Column("weights", Json, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Column("bucket_by", String(128), nullable=False, server_default=""),
    Column("prerequisites", Json, nullable=False, server_default="[]"),
    # Who switched the flag off here, while it stays off (core/switch_off.py); all null otherwise.
    Column("off_at", Timestamp, nullable=True),
    Column("off_actor", String(200), nullable=True),
    Column("off_on_behalf_of", String(200), nullable=True),
    Column("off_reason", Text, nullable=True),
    Column("off_how", String(16), nullable=True),
    Column("off_source_id", Integer, nullable=True),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("environment_id", Integer, ForeignKey("environments.id", ondelete="CASCADE"), nullable=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp, nullable=True),
)

# Append-only: who changed what, when and why.
audit = Table(
    "audit",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", Timestamp, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(300), nullable=False),
    Column("environment", String(128), nullable=True),
    Column("before", Json, nullable=True),
    Column("after", Json, nullable=True),
    Column("reason", Text, nullable=False, default=""),
    Column("on_behalf_of", String(200), nullable=True),
    Index("ix_audit_target", "target", "id"),
)

# One row: the configuration's revision, which every instance polls to know when flags or tokens changed. Every
# audited transaction bumps it just before commit; the row lock makes the bumps follow commit order, which audit
# ids (a sequence, taken at insert) do not: a change that took an earlier id and committed later would be missed.
config_revision = Table(
    "config_revision",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("revision", BigInteger, nullable=False),
)

# Every state a flag had in an environment, from when: telemetry without a flag map is attributed with
# the rollout in force at the event's own time.
flag_history = Table(
    "flag_history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("flag_id", Integer, ForeignKey("flags.id", ondelete="CASCADE"), nullable=False),
    Column("environment_id", Integer, ForeignKey("environments.id", ondelete="CASCADE"), nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("rollout_bp", Integer, nullable=False),
    Column("salt", String(200), nullable=False),
    Column("weights", Json, nullable=False),
    Column("version", Integer, nullable=False),
    Column("bucket_by", String(128), nullable=False, server_default=""),
    Index("ix_flag_history_flag", "flag_id", "environment_id", "at"),
)

# Raw telemetry, kept for the retention period: one row per ingested batch and day, its events packed with
# msgpack. Nothing reads single raw events on a hot path, so a batch costs one row, not a thousand. On PostgreSQL
# the table is partitioned by `day` (migration 0015; primary key (day, id)), so retention drops whole days.
event_batches = Table(
    "event_batches",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("environment_id", Integer, nullable=False),
    Column("day", Integer, nullable=False),  # days since 1970-01-01 of every event in the row
    Column("first_ms", BigInteger, nullable=False),
    Column("last_ms", BigInteger, nullable=False),
    Column("events", Integer, nullable=False),
    Column("body", LargeBinary, nullable=False),
    Index("ix_event_batches_environment_time", "environment_id", "last_ms"),
)

# Aggregates per minute (resolution 60) and per hour (3600) for each flag slot × variant × metric; kept
# for good. A query over 48 hours reads about a hundred rows per variant whatever the event volume.
rollups = Table(
    "rollups",
    metadata,
    Column("environment_id", Integer, nullable=False),
    Column("flag", String(128), nullable=False),  # "" = every event of the environment
    Column("variant", String(128), nullable=False),
    Column("metric", String(200), nullable=False),
    Column("resolution", SmallInteger().with_variant(Integer(), "sqlite"), nullable=False),
    Column("period", BigInteger, nullable=False),  # unix seconds at the start of the minute or hour
    Column("count", BigInteger, nullable=False),
    Column("failures", BigInteger, nullable=False),
    Column("total", Float, nullable=False),
    Column("total_sq", Float, nullable=False),
    Column("last_value", Float, nullable=True),
    Column("last_at_ms", BigInteger, nullable=True),
    Column("sketch", LargeBinary, nullable=True),
    PrimaryKeyConstraint("environment_id", "flag", "metric", "resolution", "period", "variant"),
)

# Per user and day: what per-user metrics (engagement per exposed user) and sample-ratio checks count. On PostgreSQL
# this and unit_latency_days keep 30 % of each page free for the worker's updates (fillfactor 70, migration 0022).
unit_days = Table(
    "unit_days",
    metadata,
    Column("environment_id", Integer, nullable=False),
    Column("flag", String(128), nullable=False),
    Column("variant", String(128), nullable=False),
    Column("day", Integer, nullable=False),  # days since 1970-01-01
    Column("targeting_key", String(256), nullable=False),
    Column("events", Integer, nullable=False),
    Column("engaged", Integer, nullable=False),
    Column("failures", Integer, nullable=False, server_default="0"),  # failed requests: bursts by user
    Column(
        "exposures", Integer, nullable=False, server_default="0"
    ),  # of the flag: users with no other telemetry
    PrimaryKeyConstraint("environment_id", "flag", "day", "variant", "targeting_key"),
)

# Each user's latency values per day and octave (sketch.level_of), per sketched metric: how clustered by user
# the values over a line are, so a percentile is compared with control per user.
unit_latency_days = Table(
    "unit_latency_days",
    metadata,
    Column("environment_id", Integer, nullable=False),
    Column("flag", String(128), nullable=False),
    Column("metric", String(128), nullable=False),
    Column("day", Integer, nullable=False),
    Column("variant", String(128), nullable=False),
    Column("targeting_key", String(256), nullable=False),
    Column("level", Integer, nullable=False),
    Column("count", Integer, nullable=False),
    PrimaryKeyConstraint("environment_id", "flag", "metric", "day", "variant", "targeting_key", "level"),
)

# What ingest adds to unit_days, appended as it comes and merged into unit_days by the worker's compaction; readers
# add both. A pack is the users of one batch with the same counts on the same flag, variant and day: `keys` their
# targeting keys as a JSON array (`users` of them), so a batch appends a handful of rows, not one per user, and the
# database expands them (json_each, json_array_elements_text) when it merges or reads them.
unit_day_packs = Table(
    "unit_day_packs",
    metadata,
    Column("environment_id", Integer, nullable=False),
    Column("flag", String(128), nullable=False),
    Column("variant", String(128), nullable=False),
    Column("day", Integer, nullable=False),
    Column("events", Integer, nullable=False),
    Column("engaged", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("exposures", Integer, nullable=False, server_default="0"),
    Column("users", Integer, nullable=False),
    Column("keys", Text, nullable=False),
    Index("ix_unit_day_packs_flag_day", "environment_id", "flag", "day"),
)

# Likewise for unit_latency_days: the users of one batch with `count` values in the same octave.
unit_latency_packs = Table(
    "unit_latency_packs",
    metadata,
    Column("environment_id", Integer, nullable=False),
    Column("flag", String(128), nullable=False),
    Column("variant", String(128), nullable=False),
    Column("day", Integer, nullable=False),
    Column("metric", String(128), nullable=False),
    Column("level", Integer, nullable=False),
    Column("count", Integer, nullable=False),
    Column("users", Integer, nullable=False),
    Column("keys", Text, nullable=False),
    Index("ix_unit_latency_packs_flag_day", "environment_id", "flag", "metric", "day"),
)

# User feedback, one row per rating or comment; `variants` is what it was attributed to (flag → variant).
# Kept as long as raw events, and deleted per user on request.
feedback = Table(
    "feedback",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("environment_id", Integer, nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("targeting_key", String(256), nullable=True),
    Column("score", Float, nullable=True),  # 1–5, whatever the scale
    Column("scale", String(32), nullable=True),
    Column("comment", Text, nullable=True),
    Column("tags", Json, nullable=True),
    Column("variants", Json, nullable=False),
    Column("source", String(16), nullable=False),  # native, sentry
    Index("ix_feedback_environment_time", "environment_id", "at_ms"),
    Index("ix_feedback_user", "targeting_key"),
)

# Which feedback belongs to which variant of which flag: what listing by flag and the reports filter on.
feedback_variants = Table(
    "feedback_variants",
    metadata,
    Column("feedback_id", BigInteger, nullable=False),
    Column("environment_id", Integer, nullable=False),
    Column("flag", String(128), nullable=False),
    Column("variant", String(128), nullable=False),
    PrimaryKeyConstraint("feedback_id", "flag"),
    Index("ix_feedback_variants_flag", "environment_id", "flag", "feedback_id"),
)

# Sentry events' users and flags by event id, so feedback that only names the event it is about
# (`associated_event_id`, a user_report's `event_id`) is attributed like that event. Kept as long as raw events.
event_refs = Table(
    "event_refs",
    metadata,
    Column("environment_id", Integer, nullable=False),
    Column("event_id", String(64), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    Column("targeting_key", String(256), nullable=True),
    Column("flags", Json, nullable=True),
    PrimaryKeyConstraint("environment_id", "event_id"),
    Index("ix_event_refs_time", "at_ms"),
)

# Ids of the summaries stored (`POST /api/v1/summaries`), so a summary sent again after a lost answer is not
# counted twice; kept for SUMMARY_ID_RETENTION (services/ingest.py).
summary_ids = Table(
    "summary_ids",
    metadata,
    Column("environment_id", Integer, nullable=False),
    Column("summary_id", String(64), nullable=False),
    Column("at_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("environment_id", "summary_id"),
    Index("ix_summary_ids_time", "at_ms"),
)

metric_definitions = Table(
    "metric_definitions",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("definition", Json, nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

# One plan running for one flag in one environment. `version` makes every write a compare-and-swap, so a
# decision is applied once even if two controllers raced; at most one live rollout per flag × environment.
rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("flag", String(128), nullable=False),
    Column("environment", String(128), nullable=False),
    Column("name", String(200), nullable=False),
    Column("plan", Json, nullable=False),
    Column("phase", String(32), nullable=False),
    Column("live", Boolean, nullable=False),
    Column("state", Json, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    Index(
        "ux_rollouts_live",
        "flag",
        "environment",
        unique=True,
        sqlite_where=text("live"),
        postgresql_where=text("live"),
    ),
)

rollout_transitions = Table(
    "rollout_transitions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("rollout_id", Integer, ForeignKey("rollouts.id", ondelete="CASCADE"), nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("from_phase", String(32), nullable=False),
    Column("to_phase", String(32), nullable=False),
    Column("from_stage", Integer, nullable=False),
    Column("to_stage", Integer, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", Json, nullable=False),
    Column("on_behalf_of", String(200), nullable=True),
    Column("kind", String(32), nullable=True),  # TransitionKind; rows from before 0006 have none
    Index("ix_rollout_transitions_rollout", "rollout_id", "id"),
)

# Side effects of decisions (hooks now, notifications next), written in the decision's own transaction and
# delivered afterwards, at least once, with the same id on every attempt.
outbox = Table(
    "outbox",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("destination", String(500), nullable=False),  # delivered in order within one destination
    Column("payload", Json, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", Timestamp, nullable=False),
    Column("delivered_at", Timestamp, nullable=True),
    Column("last_error", Text, nullable=True),
    Index("ix_outbox_queue", "destination", "delivered_at", "id"),
)

# Which instance leads (runs the controller and delivers the outbox), until when.
leases = Table(
    "leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", Timestamp, nullable=False),
)

channels = Table(
    "channels",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("type", String(16), nullable=False),
    Column("min_severity", String(16), nullable=False),
    Column("config", Json, nullable=False),  # holds secrets: the API never shows them back
    Column("created_at", Timestamp, nullable=False),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule", Json, nullable=False),
    Column("rollout_id", Integer, ForeignKey("rollouts.id", ondelete="CASCADE"), nullable=True),
    Column("breaching_since", Timestamp, nullable=True),  # the condition holds since then, not yet for `for`
    Column("created_at", Timestamp, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", Integer, ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False),
    Column("state", String(16), nullable=False),  # firing | resolved
    Column("value", Float, nullable=True),
    Column("started_at", Timestamp, nullable=False),
    Column("resolved_at", Timestamp, nullable=True),
    Column("last_notified_at", Timestamp, nullable=False),
    Index("ix_alerts_rule_state", "rule_id", "state"),
)

report_schedules = Table(
    "report_schedules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("schedule", Json, nullable=False),
    Column("last_period", String(32), nullable=True),  # the day or week last sent: sent once per period
    Column("created_at", Timestamp, nullable=False),
)

# A flag state change made once at `at` by the leading worker: `status` moves from pending exactly once.
# Flag and environment are keys, not references: a change whose flag is gone fails with that reason.
scheduled_changes = Table(
    "scheduled_changes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("flag", String(128), nullable=False),
    Column("environment", String(64), nullable=False),
    Column("change", Json, nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("notify", Json, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | done | failed | cancelled
    Column("created_by", String(200), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp, nullable=True),
    Column("finished_by", String(200), nullable=True),
    Column("outcome", Text, nullable=False),
    Index("ix_scheduled_changes_status_at", "status", "at"),
)

# Dashboard sign-ins. The id is the SHA-256 of the cookie's secret; token_hash pins the token's secret at sign-in,
# so a revoked or re-keyed token ends its sessions at once.
sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("token_id", String(32), ForeignKey("tokens.id", ondelete="CASCADE"), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("touched_at", Timestamp, nullable=False),
    Index("ix_sessions_expires_at", "expires_at"),
)

# What is known about a flag's life beyond its definition: its kind, who hears of its status changes, the
# status last announced (so each change is announced once), its code references as last pushed, its archive.
# No row: a release flag nobody has said more about.
flag_lifecycle = Table(
    "flag_lifecycle",
    metadata,
    Column("flag_id", Integer, ForeignKey("flags.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("notify", Json, nullable=False),
    Column("status", String(32), nullable=False),
    Column("status_since", Timestamp, nullable=True),
    Column("references", Json, nullable=False),
    Column("scanned_at", Timestamp, nullable=True),
    Column("archived_at", Timestamp, nullable=True),
)

# Evaluations per flag, environment and day, added by each instance from its in-memory counts.
flag_evaluations = Table(
    "flag_evaluations",
    metadata,
    Column("flag_id", Integer, ForeignKey("flags.id", ondelete="CASCADE"), nullable=False),
    Column("environment_id", Integer, ForeignKey("environments.id", ondelete="CASCADE"), nullable=False),
    Column("day", Integer, nullable=False),  # days since 1970-01-01
    Column("count", BigInteger, nullable=False),
    Column("last_at", Timestamp, nullable=False),
    PrimaryKeyConstraint("flag_id", "environment_id", "day"),
)

# Segments of one environment, and the targeting keys each lists (a row per key: adding a few to a hundred
# thousand writes only those few).
segments = Table(
    "segments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("environment_id", Integer, ForeignKey("environments.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(128), nullable=False),
    Column("description", Text, nullable=False),
    Column("conditions", Json, nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    UniqueConstraint("environment_id", "key"),
)

segment_keys = Table(
    "segment_keys",
    metadata,
    Column("segment_id", Integer, ForeignKey("segments.id", ondelete="CASCADE"), nullable=False),
    Column("key", String(256), nullable=False),
    PrimaryKeyConstraint("segment_id", "key"),
)
