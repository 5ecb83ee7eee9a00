"""A client's summary of its events (per-second aggregates and unit days) stored in their place: the same metric
answers and the same gate verdicts as the events themselves, on SQLite and PostgreSQL; bad summaries refused whole."""

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from rampup.adapters.codecs.native import decode_batch
from rampup.adapters.codecs.summaries import decode_summary, encode_summary
from rampup.bootstrap import Container, build_container, prepare
from rampup.config import Settings
from rampup.core.bucketing import in_rollout
from rampup.core.gates import Gate, assess
from rampup.core.rollups import fold_seconds
from rampup.errors import InvalidInput
from rampup.services.metrics import MetricQuery

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
FLAG = "checkout"
GATES = [
    {"metric": "error_rate", "target": "< 2%", "rollback": "> 5%"},
    {"metric": "api_latency_p95", "target": "< 400ms"},
    {"metric": "error_rate", "compare": "control", "target": "< +50%"},
    {"metric": "api_latency_p95", "compare": "control", "rollback": "> +10%"},  # per user: the octaves
]


def events(n: int = 3000) -> bytes:
    """`n` requests, and exposures: of every tenth user of them, and of ten users who send nothing else."""
    rng = random.Random(15)
    exposures = [
        {
            "type": "exposure",
            "timestamp": (NOW - timedelta(seconds=5)).isoformat(),
            "targeting_key": f"user-{user}",
            "flag": FLAG,
            "variant": "on" if in_rollout(FLAG, f"user-{user}", 50) else "off",
        }
        for user in (*range(0, 400, 10), *range(400, 410))
    ]
    return json.dumps(
        {
            "events": exposures
            + [
                {
                    "type": "request",
                    "timestamp": (NOW - timedelta(seconds=rng.uniform(1, 10))).isoformat(),  # one flush
                    "targeting_key": f"user-{(user := rng.randrange(400))}",
                    "flags": {FLAG: (on := rng.random() < 0.5)},
                    # each user slower or faster by their own factor: the per-user octaves matter
                    "duration_ms": round(rng.lognormvariate(4.6 + 0.2 * on + (user % 9 - 4) / 8, 0.3), 2),
                    "ok": rng.random() > (0.03 if on else 0.01),
                }
                for _ in range(n)
            ]
        }
    ).encode()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def pair(
    request: pytest.FixtureRequest, make_database_url: Callable[[str], str]
) -> Iterator[list[Container]]:
    """Two databases set up alike: one will hold the events, the other the summary of them."""
    made = []
    for _ in range(2):
        c = build_container(
            Settings(database_url=make_database_url(request.param), admin_token="t"), clock=lambda: NOW
        )
        prepare(c)
        c.flags.create_flag({"key": FLAG, "type": "boolean"}, "dana")
        c.flags.set_state(FLAG, "production", {"enabled": True, "rollout": 50}, "dana")
        made.append(c)
    yield made
    for c in made:
        c.close()


def answers(c: Container) -> list[object]:
    metrics = [
        c.metrics.query(MetricQuery("production", metric, 3600, flag=flag, end=NOW))
        for metric in ("error_rate", "api_latency_p50", "api_latency_p95", "errors")
        for flag in (FLAG, None)
    ]
    env = c.snapshots.current.environments["production"]
    with c.store.read() as tx:
        day = NOW_MS // 86_400_000
        units = tx.telemetry.unit_totals(env.id, FLAG, day, day)
        inputs = tx.telemetry.gate_inputs(env.id, FLAG)
        verdicts = [
            assess(Gate.parse(gate, f"gates[{i}]"), inputs, NOW_MS - 3_600_000, NOW_MS)
            for i, gate in enumerate(GATES)
        ]
    return [units, *metrics, *[(v.verdict, v.measurement, v.measurement.bounds()) for v in verdicts]]


def test_a_summary_gives_the_metric_answers_and_gate_verdicts_of_its_events(pair: list[Container]) -> None:
    raw, summarized = pair
    body = events()
    observations = decode_batch(body, NOW_MS)
    assert raw.ingest.ingest("production", observations) == 3000 + 50  # the requests and the exposures

    # What a client would send instead: its events folded the way the server folds them, over the wire format.
    snapshot = summarized.snapshots.current
    folded = fold_seconds(observations, snapshot.timelines["production"])
    wire = encode_summary(*folded)
    assert len(wire) < len(body) / 2
    assert (
        summarized.ingest.ingest_summary("production", *decode_summary(wire, NOW_MS)) == 3000
    )  # the requests

    assert answers(summarized) == answers(raw)
    # Per variant, its exposed users, and those of them with no request of that variant: users 400 to 409, and
    # those of 0 to 390 whose requests all went to the other variant.
    sent = json.loads(body)["events"]
    requested = {
        (e["targeting_key"], "on" if e["flags"][FLAG] else "off") for e in sent if e["type"] == "request"
    }
    exposed = [(e["targeting_key"], e["variant"]) for e in sent if e["type"] == "exposure"]
    expected = {
        v: (
            sum(w == v for _, w in exposed),
            sum(w == v and (user, w) not in requested for user, w in exposed),
        )
        for v in ("on", "off")
    }
    units = answers(raw)[0]
    assert isinstance(units, dict) and {v: (t.exposed, t.silent) for v, t in units.items()} == expected
    assert all(0 < silent < exposed for exposed, silent in expected.values()), expected
    verdicts = [a[0] for a in answers(raw)[-len(GATES) :]]  # type: ignore[index]
    assert len(set(verdicts)) > 1, (
        f"the gates should not all agree, or the comparison shows little: {verdicts}"
    )


def test_a_bad_summary_is_refused_whole_saying_where(pair: list[Container]) -> None:
    c = pair[0]
    cell = {
        "flag": FLAG,
        "variant": "on",
        "metric": "error_rate",
        "second": 1893499000,
        "count": 5,
        "failures": 1,
    }
    before = answers(c)
    for change, where in (
        ({"failures": 6}, "seconds[1].failures"),
        ({"variant": "maybe"}, "seconds[1].variant"),
        ({"flag": "no-such-flag"}, "seconds[1].flag"),
        ({"metric": "made_up"}, "seconds[1].metric"),
        ({"count": -1}, "seconds[1].count"),
        ({"sketch": {"3": 9}}, "seconds[1].sketch"),
    ):
        body = json.dumps({"seconds": [cell, {**cell, "second": 1893499001, **change}]}).encode()
        with pytest.raises(InvalidInput) as refused:
            c.ingest.ingest_summary("production", *decode_summary(body, NOW_MS))
        assert refused.value.where == where, (change, refused.value.message)
    assert answers(c) == before, "a refused summary stores nothing, not even its good part"
