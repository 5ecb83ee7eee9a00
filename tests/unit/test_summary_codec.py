"""The summaries wire format's unit days: a unit's exposures of its flag travel with its other counts; a summary
from before them decodes with none; more exposures than events is refused where it is."""

import json

import pytest

from rampup.adapters.codecs.summaries import decode_summary, encode_summary
from rampup.core.attribution import FlagTimeline
from rampup.core.flags import FlagDefinition, FlagState
from rampup.core.rollups import UnitKey, fold_seconds
from rampup.core.telemetry import Kind, Observation
from rampup.errors import InvalidInput

NOW_MS = 1_790_000_000_000
DAY = NOW_MS // 86_400_000
TIMELINES = {"ws": FlagTimeline(FlagDefinition.parse("ws"), [0], [FlagState(enabled=True, salt="ws")])}


def test_a_summary_with_exposures_round_trips() -> None:
    observations = [
        Observation(Kind.EXPOSURE, NOW_MS - 900, "u1", {"ws": "on"}, name="ws", variant="on", count=2),
        Observation(Kind.REQUEST, NOW_MS - 800, "u1", {"ws": True}, 40.0, True),
        Observation(Kind.EXPOSURE, NOW_MS - 700, "u2", {"ws": "on"}, name="ws", variant="on"),
        Observation(Kind.REQUEST, NOW_MS - 600, "u3", {"ws": True}, 30.0),
    ]
    seconds, units, latencies = fold_seconds(observations, TIMELINES)
    assert units == {
        UnitKey("ws", "on", DAY, "u1"): [3, 0, 1, 2],
        UnitKey("ws", "on", DAY, "u2"): [1, 0, 0, 1],
        UnitKey("ws", "on", DAY, "u3"): [1, 0, 0, 0],
    }
    wire = encode_summary(seconds, units, latencies, "s-1")
    sent = {u["unit"]: u for u in json.loads(wire)["units"]}
    assert (sent["u1"]["exposures"], sent["u2"]["exposures"]) == (2, 1)
    assert "exposures" not in sent["u3"]  # none: left out, as a server from before them expects
    assert decode_summary(wire, NOW_MS) == (seconds, units, latencies, "s-1")


def unit(**fields: object) -> dict[str, object]:
    return {"flag": "ws", "variant": "on", "day": DAY, "unit": "u1", "events": 3, **fields}


def test_a_summary_from_before_exposures_decodes_with_none() -> None:
    body = json.dumps({"seconds": [], "units": [unit(engaged=1, failures=2)]}).encode()
    _, units, _, _ = decode_summary(body, NOW_MS)
    assert units == {UnitKey("ws", "on", DAY, "u1"): [3, 1, 2, 0]}


@pytest.mark.parametrize(
    ("exposures", "message"),
    [(4, "more exposures than events"), (-1, "Expected `int` >= 0"), ("1", "Expected `int`, got `str`")],
)
def test_exposures_that_cannot_be_are_refused_at_the_unit(exposures: object, message: str) -> None:
    units = [unit(), unit(unit="u2", exposures=3), unit(unit="u3", exposures=exposures)]
    body = json.dumps({"seconds": [], "units": units}).encode()
    with pytest.raises(InvalidInput) as refused:
        decode_summary(body, NOW_MS)
    assert refused.value.where == "units[2].exposures"
    assert refused.value.message == message
