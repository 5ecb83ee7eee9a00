"""`native.observations_of`, what the SDK folds its summaries from: the Observations the server decodes from the
same events, and, one by one, the events the server would refuse a batch for."""

import json
from typing import Any

import pytest

from rampup.adapters.codecs.native import decode_batch, observations_of
from rampup.errors import InvalidInput

AT_MS = 1_790_000_000_123

ALIKE: list[dict[str, Any]] = [
    {"type": "request", "duration_ms": 12.5, "ok": False, "status": 503, "targeting_key": "u-1"},
    {"type": "request", "flags": {"checkout": True, "plan": "pro"}, "tags": {"n": 3, "beta": True, "x": 1.5}},
    {"type": "error", "unhandled": True, "message": "KeyError: 'cart'", "flags": {"checkout": False}},
    {
        "type": "exposure",
        "targeting_key": "u-2",
        "flag": "checkout",
        "variant": "on",
        "tags": {"account": "a1"},
    },
    {"type": "custom", "name": "clicked", "value": 2, "engagement": True},
    {"type": "feedback", "rating": "up", "scale": "thumbs", "comment": "fine"},
]


def test_the_server_decodes_the_same_events_into_the_same_observations() -> None:
    body = json.dumps({"events": [{**e, "timestamp": "2026-09-21T13:33:20.123+00:00"} for e in ALIKE]})
    expected = decode_batch(body.encode(), AT_MS)
    observations, refused = observations_of([(expected[0].at_ms, e) for e in ALIKE])
    assert (observations, refused) == (expected, [])


@pytest.mark.parametrize(
    ("event", "where"),
    [
        ({"type": "request", "duration_ms": "slow"}, "duration_ms"),
        ({"type": "request", "duration_ms": -1.0}, "duration_ms"),
        ({"type": "teleport"}, "type"),
        ({"type": "request", "targeting_key": "nul\x00"}, None),
        ({"type": "request", "tags": {"t": object()}}, None),
        ({"type": "feedback", "rating": 6}, "rating"),
    ],
)
def test_an_event_the_server_would_refuse_is_named_and_the_rest_kept(
    event: dict[str, Any], where: str | None
) -> None:
    good = {"type": "request", "ok": True}
    observations, refused = observations_of([(AT_MS, good), (AT_MS, event), (AT_MS, good)])
    assert len(observations) == 2 and all(o.at_ms == AT_MS for o in observations)
    [(index, problem)] = refused
    assert index == 1 and isinstance(problem, InvalidInput) and problem.where == where, problem
