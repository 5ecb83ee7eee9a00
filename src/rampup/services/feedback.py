"""User feedback read back: pages of it per flag and variant, the recent comments reports quote, and a
user's feedback purged on request (audited)."""

from dataclasses import dataclass

from rampup.core.feedback import Entry
from rampup.core.ports import Clock, Store
from rampup.core.telemetry import ALL_USERS
from rampup.errors import InvalidInput, NotFound
from rampup.services.snapshot import SnapshotCache

__all__ = ["FeedbackService", "FeedbackQuery", "MAX_PAGE"]

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class FeedbackQuery:
    environment: str
    flag: str | None = None  # None: every piece of feedback in the environment
    variant: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    commented: bool = False  # only feedback with a comment
    before_id: int | None = None  # paging: older than this id
    limit: int = 50


class FeedbackService:
    def __init__(self, store: Store, snapshots: SnapshotCache, clock: Clock) -> None:
        self._store = store
        self._snapshots = snapshots
        self._clock = clock

    def page(self, q: FeedbackQuery) -> list[Entry]:
        """Newest first."""
        env = self._snapshots.current.environment(q.environment, q.flag)
        if q.variant is not None and q.flag is None:
            raise InvalidInput("a variant belongs to a flag: give the flag too", where="variant")
        if not 1 <= q.limit <= MAX_PAGE:
            raise InvalidInput(f"limit is from 1 to {MAX_PAGE}", where="limit")
        with self._store.read() as tx:
            return tx.feedback.page(
                env.id,
                flag=q.flag if q.flag is not None else ALL_USERS,
                variant=q.variant,
                since_ms=q.since_ms,
                until_ms=q.until_ms,
                commented=q.commented,
                before_id=q.before_id,
                limit=q.limit,
            )

    def purge(self, targeting_key: str, environment: str | None, actor: str) -> int:
        """Every piece of feedback one user gave, comments included, in one environment or in all of them."""
        if not targeting_key or len(targeting_key) > 256:
            raise InvalidInput("user is a targeting key of 1 to 256 characters", where="user")
        now = self._clock()
        with self._store.transaction() as tx:
            env = tx.environments.get(environment) if environment is not None else None
            if environment is not None and env is None:
                raise NotFound(f"environment {environment!r} not found")
            deleted = tx.feedback.purge_user(targeting_key, env.id if env else None)
            tx.audit.record(
                actor,
                "feedback.purge",
                f"user:{targeting_key}",
                environment,
                None,
                {"deleted": deleted},
                "",
                now,
            )
        return deleted
