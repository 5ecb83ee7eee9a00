"""Gates, one verdict at a time: `judge` on measurements, `assess` on data laid out hour by hour."""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from rampup.core.gates import (
    CONTROL,
    STAGE_ALPHA,
    TREATMENT,
    Compare,
    Gate,
    Measurement,
    Scale,
    Verdict,
    assess,
    judge,
    measure,
    restarts,
)
from rampup.core.rollups import Aggregate, Exceedance, UnitTotals
from rampup.errors import InvalidInput

HOUR = 3_600_000


def gate(**raw: object) -> Gate:
    return Gate.parse(raw, "gates[0]")


def m(value: float, lower: float, upper: float) -> Measurement:
    return Measurement(value, lower, upper, 1000)


ERROR = gate(metric="error_rate", target="< 0.1%", rollback="> 0.5%", disable="> 1%")
GUARD = gate(metric="engagement", compare="control", rollback="< -10%")


@pytest.mark.parametrize(
    ("g", "measured", "verdict", "breached"),
    [
        (ERROR, m(0.0004, 0.0002, 0.0008), Verdict.PASS, None),
        (ERROR, m(0.0009, 0.0002, 0.003), Verdict.INCONCLUSIVE, None),  # straddles the target
        (ERROR, m(0.003, 0.0015, 0.004), Verdict.WARN, None),  # surely over target, under rollback
        (ERROR, m(0.007, 0.006, 0.009), Verdict.FAIL, "rollback"),
        (ERROR, m(0.02, 0.015, 0.03), Verdict.CRITICAL, "disable"),
        (ERROR, m(0.007, 0.004, 0.009), Verdict.WARN, None),  # over the line, but the sequence is not wholly
        (ERROR, Measurement(None, None, None, 0), Verdict.INCONCLUSIVE, None),  # no data is never pass
        (GUARD, m(-0.2, -0.3, -0.15), Verdict.FAIL, "rollback"),
        (GUARD, m(0.0, -0.05, 0.05), Verdict.PASS, None),
        (GUARD, m(-0.08, -0.2, 0.05), Verdict.INCONCLUSIVE, None),
    ],
)
def test_judge(g: Gate, measured: Measurement, verdict: Verdict, breached: str | None) -> None:
    assert judge(g, measured) == (verdict, breached)


@pytest.mark.parametrize(
    ("raw", "scales"),
    [
        ({"rollback": "> 0.5%"}, [Scale.OWN]),
        ({"compare": "control", "rollback": "> +0.3pp"}, [Scale.DIFFERENCE]),
        ({"compare": "control", "rollback": "> +25%"}, [Scale.RELATIVE]),
        (
            {"compare": "control", "rollback": ["> 0.5%", "> +0.3pp", "> +25%"]},
            [Scale.OWN, Scale.DIFFERENCE, Scale.RELATIVE],
        ),
        ({"compare": "control", "target": "< +0.2pp"}, [Scale.DIFFERENCE]),  # non-inferiority
    ],
)
def test_one_gate_holds_its_own_lines_and_lines_against_control(
    raw: dict[str, object], scales: list[Scale]
) -> None:
    lines = Gate.lines({"metric": "error_rate", **raw}, "gates[0]")
    assert [g.scale for g in lines] == scales
    assert all((g.compare is Compare.CONTROL) == (g.scale is not Scale.OWN) for g in lines)


@pytest.mark.parametrize(
    ("raw", "where", "words"),
    [
        ({"metric": "error_rate", "rollback": "> +0.3pp"}, "gates[0].rollback", "compare: control"),
        (
            {"metric": "api_latency_p95", "compare": "control", "rollback": "> +0.3pp"},
            "gates[0].rollback",
            "rates",
        ),
        ({"metric": "error_rate", "compare": "control", "rollback": "> +3"}, "gates[0].rollback", "like"),
        (
            {"metric": "error_rate", "compare": "control", "rollback": ["> +1pp", "> +2pp"]},
            "gates[0].rollback[1]",
            "two rollback lines",
        ),
        (
            {"metric": "lighthouse", "compare": "control", "warn": "< -5%"},
            "gates[0].compare",
            "cannot be compared",
        ),
    ],
)
def test_bad_lines_say_where(raw: dict[str, object], where: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words) as caught:
        Gate.lines(raw, "gates[0]")
    assert caught.value.where == where


@dataclass
class Hours:
    """GateInputs over data laid out hour by hour: {(metric, variant): [Aggregate per hour]}."""

    data: dict[tuple[str, str], list[Aggregate]] = field(default_factory=dict)
    clustered: dict[str, float] = field(default_factory=dict)  # variant → dispersion
    users: dict[str, UnitTotals] = field(default_factory=dict)
    slow: dict[str, Exceedance] = field(default_factory=dict)  # variant → its users' latencies over a line

    def rates(self, variant: str, hourly: Sequence[tuple[int, int]]) -> None:
        self.data[("error_rate", variant)] = [Aggregate(count=n, failures=s) for n, s in hourly]

    def aggregate(self, metric: str, variant: str, since_ms: int, until_ms: int) -> Aggregate:
        total = Aggregate()
        for hour, a in enumerate(self.data.get((metric, variant), [])):
            if since_ms <= hour * HOUR and (hour + 1) * HOUR <= until_ms:
                total.merge(a)
        return total

    def units(self, variant: str, since_ms: int, until_ms: int) -> UnitTotals:
        return self.users.get(variant, UnitTotals(0, 0, 0, 0))

    def dispersion(self, metric: str, variant: str, since_ms: int, until_ms: int) -> float:
        return self.clustered.get(variant, 1.0)

    def exceedance(self, metric: str, variant: str, since_ms: int, until_ms: int) -> dict[int, Exceedance]:
        return {level: self.slow[variant] for level in range(-10, 40)} if variant in self.slow else {}


TWO_ARMS = Gate.lines(
    {
        "metric": "error_rate",
        "compare": "control",
        "target": "< 0.1%",
        "rollback": ["> 0.5%", "> +0.3pp", "> +100%"],
    },
    "gates[0]",
)
OWN, DIFFERENCE, RELATIVE = TWO_ARMS


def hours(n: int, requests: int, rate: float) -> list[tuple[int, int]]:
    return [(requests, round(requests * rate))] * n


@pytest.mark.parametrize(
    ("treatment", "control", "clustered", "verdicts"),
    [
        # healthy, 10/90: the target passes, nothing is breached; the split of 48 h of failures between
        # the variants already rules out doubling
        (hours(48, 1800, 0.0005), hours(48, 16200, 0.0005), 1.0, ["pass", "pass", "pass"]),
        # 0.05% → 0.35%: under the absolute line, caught against control
        (hours(12, 1800, 0.0035), hours(12, 16200, 0.0005), 1.0, ["warn", "inconclusive", "fail"]),
        # an incident in both variants: the line is breached, but control is just as bad
        (hours(6, 1800, 0.02), hours(6, 16200, 0.02), 1.0, ["environment", "inconclusive", "pass"]),
        # 0.42% in runs of 10 from one user, both variants: under the line counted per user
        (hours(48, 18000, 0.0042), hours(48, 18000, 0.0042), 10.0, ["warn", "pass", "pass"]),
    ],
)
def test_assess_two_arms(
    treatment: list[tuple[int, int]], control: list[tuple[int, int]], clustered: float, verdicts: list[str]
) -> None:
    data = Hours(clustered={TREATMENT: clustered, CONTROL: clustered})
    data.rates(TREATMENT, treatment)
    data.rates(CONTROL, control)
    now = len(treatment) * HOUR
    assert [assess(g, data, 0, now).verdict.value for g in TWO_ARMS] == verdicts


def test_bursts_counted_per_request_would_breach_the_line() -> None:
    data = Hours()
    data.rates(TREATMENT, hours(48, 18000, 0.0056))
    assert assess(OWN, data, 0, 48 * HOUR).verdict is Verdict.FAIL
    data.clustered[TREATMENT] = 10.0  # the same failures, in runs of 10 from one user: far less evidence
    assert assess(OWN, data, 0, 48 * HOUR).verdict is not Verdict.FAIL


RUNS_OF_TEN = {CONTROL: 10.0}  # control's failures come in runs of 10 from one user; the treatment has none


@pytest.mark.parametrize(
    ("hours_in", "treatment", "control", "clustered", "verdicts"),
    [
        # 0.5 req/s at 10%, 40 h and no failure in the treatment's 7,200 requests, beside control's 0.42% in
        # runs of ten: about 720 chances of a run, not enough to show the rate under 0.1%
        (40, [(180, 0)] * 40, hours(40, 1620, 0.0042), RUNS_OF_TEN, ["inconclusive"] * 3),
        # the same requests beside a control whose failures are independent: 7,200 chances, under 0.1%
        (40, [(180, 0)] * 40, hours(40, 1620, 0.0005), {}, ["pass"] * 3),
        # healthy and clustered: it still passes, on about ten times the requests
        (400, [(180, 0)] * 400, hours(400, 1620, 0.0005), RUNS_OF_TEN, ["pass"] * 3),
        # the floor is only for being shown under a line: +0.7 pp in failures from distinct users is judged
        # on them, and their split with control's rolls back within 4 h
        (4, hours(4, 1800, 0.0075), hours(4, 16200, 0.0005), RUNS_OF_TEN, ["warn", "inconclusive", "fail"]),
    ],
)
def test_no_failure_yet_is_judged_with_control_s_clustering(
    hours_in: int,
    treatment: list[tuple[int, int]],
    control: list[tuple[int, int]],
    clustered: dict[str, float],
    verdicts: list[str],
) -> None:
    data = Hours(clustered=clustered)
    data.rates(TREATMENT, treatment)
    data.rates(CONTROL, control)
    assert [assess(g, data, 0, hours_in * HOUR).verdict.value for g in TWO_ARMS] == verdicts


def test_an_undecided_target_asks_for_requests_not_per_user_evidence() -> None:
    """With control's runs of ten, the target needs ten times the requests; what it asks for is requests,
    and the time they take at the treatment's traffic (180 an hour)."""
    data = Hours(clustered=RUNS_OF_TEN)
    data.rates(TREATMENT, [(180, 0)] * 40)
    data.rates(CONTROL, hours(40, 1620, 0.0042))
    needs = assess(OWN, data, 0, 40 * HOUR).to_dict()["needs"]
    assert needs["samples"] / needs["seconds"] == pytest.approx(180 / 3600)
    assert needs["samples"] > 10 * 7200


def test_a_late_regression_is_caught_on_the_hours_after_it() -> None:
    """+0.7 pp from hour 30 of a soak: the stage's sequence is diluted by 30 healthy hours; a restarted one
    is not."""
    data = Hours()
    data.rates(TREATMENT, hours(30, 1800, 0.0005) + hours(9, 1800, 0.0075))
    data.rates(CONTROL, hours(39, 16200, 0.0005))
    stage = measure(DIFFERENCE, data, 0, 39 * HOUR, None, STAGE_ALPHA)
    assert judge(DIFFERENCE, stage)[0] is not Verdict.FAIL
    result = assess(DIFFERENCE, data, 0, 39 * HOUR)
    assert result.verdict is Verdict.FAIL
    assert result.since_ms is not None and result.since_ms >= 28 * HOUR
    assert result.to_dict()["since_ms"] == result.since_ms


def test_a_change_against_control_is_judged_on_how_failures_split() -> None:
    """+1.5 pp from hour 30, 40 minutes in: 19 of the 24 failures since are the treatment's, with a tenth of
    the requests. Judged on that split at the restart's α, "> +50%" is breached; the bounds show it."""
    relative = gate(metric="error_rate", compare="control", rollback="> +50%")
    data = Hours()
    data.rates(TREATMENT, hours(30, 1800, 0.0005) + [(1200, 19)])
    data.rates(CONTROL, hours(30, 16200, 0.0005) + [(10800, 5)])
    result = assess(relative, data, 0, 31 * HOUR)
    assert result.verdict is Verdict.FAIL and result.since_ms is not None and result.since_ms >= 28 * HOUR
    low, high = result.measurement.bounds()
    assert low is not None and high is not None and 0.5 < low < 15 < high
    data.rates(TREATMENT, hours(30, 1800, 0.0005) + [(1200, 1)])  # healthy: nothing to see
    assert assess(relative, data, 0, 31 * HOUR).verdict is not Verdict.FAIL


@pytest.mark.parametrize(
    ("treatment", "control", "verdict"),
    [
        # 50/50 at high traffic: 12 in the last hour is over the line, but control has as many per request
        ((18000, 12), (18000, 12), Verdict.INCONCLUSIVE),
        # 10/90: the treatment has 12 where its share of the requests would bring about 3
        ((1800, 12), (16200, 27), Verdict.FAIL),
        # surely 25% more per request, but under the 50% margin: judged at "more at all", the line would
        # sit on every healthy treatment's truth and spend its whole α on healthy rollouts
        ((1_800_000, 1250), (1_800_000, 1000), Verdict.INCONCLUSIVE),
        ((1_800_000, 2000), (1_800_000, 1000), Verdict.FAIL),
        # at 100% there is no control to compare with: the count alone decides nothing
        ((18000, 40), (0, 0), Verdict.INCONCLUSIVE),
        # a service that sends only its errors: users are the exposure (100 and 900 of them)
        ((0, 12), (0, 27), Verdict.FAIL),
    ],
)
def test_a_count_in_a_window_is_compared_with_control_per_request(
    treatment: tuple[int, int], control: tuple[int, int], verdict: Verdict
) -> None:
    counted = gate(metric="unhandled_exceptions", window="1h", rollback="> 5")
    assert not counted.blocks_advance
    data = Hours(users={TREATMENT: UnitTotals(100, 100, 0, 0), CONTROL: UnitTotals(900, 900, 0, 0)})
    for variant, (requests, events) in ((TREATMENT, treatment), (CONTROL, control)):
        data.rates(variant, [(requests, 0)] * 4)
        data.data[("unhandled_exceptions", variant)] = [Aggregate(count=events)] * 4
    assert assess(counted, data, 0, 4 * HOUR).verdict is verdict


def test_restarted_windows_spend_a_bounded_alpha() -> None:
    horizon = 120
    spent: dict[int, float] = {}
    for hour in range(1, 2000):
        for start, alpha in restarts(0, hour * HOUR + 1, horizon):
            spent[start] = alpha
    assert sum(spent.values()) <= 2 * 0.015
    assert {s // HOUR for s in spent} == set(range(1, 2000))


def test_zero_variance_and_few_users_are_never_certain() -> None:
    data = Hours(users={TREATMENT: UnitTotals(10, 10, 0, 0), CONTROL: UnitTotals(90, 90, 36, 50)})
    assert assess(GUARD, data, 0, HOUR).verdict is Verdict.INCONCLUSIVE  # "−100%" after 10 users
    data.users[TREATMENT] = UnitTotals(400, 400, 0, 0)  # no variance at all, but control has some
    result = assess(GUARD, data, 0, HOUR)
    low, high = result.measurement.bounds()
    assert result.verdict is Verdict.FAIL and low is not None and high is not None and low < high


def latencies(scale: float = 1.0, shift_ms: float = 0.0, per_value: int = 300) -> Aggregate:
    """An hour of request latencies: 61 lognormal quantiles around 100 ms (σ 0.5), `per_value` times each."""
    from rampup.core.sketch import bucket_of

    hist: dict[int, int] = {}
    for z in range(-30, 31):
        b = bucket_of(scale * 100 * math.exp(0.5 * z / 10) + shift_ms)
        hist[b] = hist.get(b, 0) + per_value
    return Aggregate(count=sum(hist.values()), sketch=hist)


def all_or_nothing(users: int, values_each: int, slow: int) -> Exceedance:
    """Each user's values all over a line or all under it (`slow` users over): the design effect is
    `values_each`, as if each user were one value repeated."""
    k = values_each
    return Exceedance(users * k, users * k * k, slow * k, slow * k * k, slow * k * k)


@pytest.mark.parametrize(
    ("rollback", "treatment", "control", "slow", "fails"),
    [
        ("> +20%", latencies(1.3), latencies(), None, True),  # every quantile 30% slower
        ("> +20%", latencies(1.0), latencies(), None, False),
        ("> +20%", latencies(1.1), latencies(), None, False),  # under the line
        # the slow requests come from few users, each slow in all 400 they send: 30% slower is no evidence yet
        ("> +20%", latencies(1.3), latencies(), all_or_nothing(183, 400, 20), False),
        # a 10/90 split: the treatment has a ninth of control's values
        ("> +20%", latencies(1.3, per_value=100), latencies(per_value=900), None, True),
        ("> +20%", latencies(1.0, per_value=100), latencies(per_value=900), None, False),
        ("> +50ms", latencies(shift_ms=80), latencies(), None, True),  # a difference in ms
        ("> +50ms", latencies(shift_ms=20), latencies(), None, False),
    ],
)
def test_latency_against_control_per_user(
    rollback: str, treatment: Aggregate, control: Aggregate, slow: Exceedance | None, fails: bool
) -> None:
    g = gate(metric="api_latency_p95", compare="control", rollback=rollback)
    data = Hours()
    data.data[("api_latency", TREATMENT)] = [treatment] * 4
    data.data[("api_latency", CONTROL)] = [control] * 4
    if slow is not None:
        data.slow[TREATMENT] = slow
    assert (assess(g, data, 0, 4 * HOUR).verdict is Verdict.FAIL) is fails


def test_a_latency_gate_holds_the_treatment_s_own_line_and_one_against_control() -> None:
    own, relative = Gate.lines(
        {"metric": "lcp_p75", "compare": "control", "rollback": ["> 4000ms", "> +25%"]}, "gates[0]"
    )
    data = Hours()
    data.data[("lcp", TREATMENT)] = [latencies(14)] * 4  # p75 ≈ 1,960 ms: under 4 s, 40% over control
    data.data[("lcp", CONTROL)] = [latencies(10)] * 4
    assert (own.compare, relative.compare) == (Compare.ABSOLUTE, Compare.CONTROL)
    assert assess(own, data, 0, 4 * HOUR).verdict is not Verdict.FAIL
    assert assess(relative, data, 0, 4 * HOUR).verdict is Verdict.FAIL


def test_a_design_effect_is_one_for_independent_values_however_many_each_user_sends() -> None:
    even = Exceedance(
        samples=1000 * 100, samples_sq=1000 * 100**2, above=1000 * 5, above_sq=1000 * 25, cross=1000 * 500
    )
    assert even.design_effect() == 1.0  # each of 1,000 users sends 100, 5 of them slow
    assert all_or_nothing(1000, 100, 50).design_effect() == pytest.approx(100)
    assert Exceedance().design_effect() == 1.0
