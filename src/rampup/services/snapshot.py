"""The evaluation snapshot: every flag of every environment, compiled, plus the tokens, in memory.

Hot paths (OFREP, SDK config, auth) read it without touching the database. It is rebuilt whenever the
configuration's revision (a counter every audited change bumps, in commit order) moves, which every instance
polls, so several instances on one database converge within one poll interval, and at once on the instance that
made the change.
"""

import hmac
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from rampup.core.attribution import FlagTimeline
from rampup.core.flags import CompiledFlag, FlagDefinition, FlagState, compile_flags
from rampup.core.model import Environment
from rampup.core.ports import Store
from rampup.core.segments import Segment
from rampup.core.telemetry import CustomMetric
from rampup.core.tokens import Token, hash_secret
from rampup.errors import NotFound

__all__ = ["Snapshot", "SnapshotCache"]


@dataclass(frozen=True, slots=True, eq=False)  # identity: each revision is its own snapshot
class Snapshot:
    revision: int
    environments: dict[str, Environment] = field(default_factory=dict)
    environments_by_id: dict[int, Environment] = field(default_factory=dict)
    flags: dict[str, dict[str, CompiledFlag]] = field(default_factory=dict)  # env key → flag key → flag
    tokens: dict[str, Token] = field(default_factory=dict)  # secret hash → token
    timelines: dict[str, dict[str, FlagTimeline]] = field(
        default_factory=dict
    )  # env key → flag key → history
    custom_metrics: dict[str, CustomMetric] = field(default_factory=dict)

    def environment(self, key: str, flag: str | None = None) -> Environment:
        """The environment `key`, and with `flag`, one whose flags include it; else NotFound naming which."""
        env = self.environments.get(key)
        if env is None:
            raise NotFound(f"environment {key!r} not found")
        if flag is not None and flag not in self.flags.get(key, {}):
            raise NotFound(f"flag {flag!r} not found")
        return env

    def authenticate(self, secret: str) -> Token | None:
        digest = hash_secret(secret)
        token = self.tokens.get(digest)
        if token is None or not hmac.compare_digest(token.secret_hash, digest):
            return None
        return token


class SnapshotCache:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._watchers: list[Callable[[Snapshot], object]] = []
        self.current = Snapshot(revision=-1)
        # When the database last confirmed (or replaced) the snapshot, on the monotonic clock: the server's
        # metrics show how stale it may be.
        self.confirmed_at = self.built_at = time.monotonic()

    def watch(self, callback: Callable[[Snapshot], object]) -> Callable[[], None]:
        """`callback(snapshot)` after every rebuild, on the rebuilding thread; returns how to stop watching."""
        self._watchers.append(callback)
        return lambda: self._watchers.remove(callback)

    def changed(self, revision: int | None) -> bool:
        """Told that the configuration moved (to `revision`, when known): rebuild unless already there."""
        if revision is not None and revision <= self.current.revision:
            return False
        return self.refresh()

    def refresh(self) -> bool:
        """Rebuild if the configuration moved; returns whether it did."""
        with self._lock:
            with self._store.read() as tx:
                revision = tx.audit.revision()
                self.confirmed_at = time.monotonic()
                if revision == self.current.revision:
                    return False
                environments = tx.environments.all()
                records = {r.id: r for r in tx.flags.all()}
                by_id = {e.id: e for e in environments}
                archived = {i for i, s in tx.lifecycle.all().items() if s.archived_at is not None}
                pairs: dict[str, list[tuple[FlagDefinition, FlagState]]] = {e.key: [] for e in environments}
                for s in tx.flags.states():
                    pairs[by_id[s.environment_id].key].append((records[s.flag_id].definition, s.state))
                archived_keys = {records[i].definition.key for i in archived if i in records}
                segments: dict[str, dict[str, Segment]] = {e.key: {} for e in environments}
                for record in tx.segments.all():
                    segments[by_id[record.environment_id].key][record.segment.key] = record.segment
                flags = {
                    env: compile_flags(env_pairs, archived_keys, segments[env])
                    for env, env_pairs in pairs.items()
                }
                tokens = {t.secret_hash: t for t in tx.tokens.all() if t.revoked_at is None}
                custom = {m.name: m for m in tx.custom_metrics.all()}
                history: dict[tuple[int, int], tuple[list[int], list[FlagState]]] = {}
                for past in tx.flags.history():
                    since, states = history.setdefault((past.flag_id, past.environment_id), ([], []))
                    since.append(int(past.at.timestamp() * 1000))
                    states.append(past.state)
            timelines: dict[str, dict[str, FlagTimeline]] = {e.key: {} for e in environments}
            for (flag_id, env_id), (since, states) in history.items():
                definition = records[flag_id].definition
                timelines[by_id[env_id].key][definition.key] = FlagTimeline(definition, since, states)
            self.current = Snapshot(
                revision, {e.key: e for e in environments}, by_id, flags, tokens, timelines, custom
            )
            self.built_at = time.monotonic()
        for callback in list(self._watchers):
            callback(self.current)
        return True
