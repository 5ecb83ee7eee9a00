"""Plans in YAML: examples/plans/workstation.yaml loads complete; mistakes are named with file and line."""

from pathlib import Path

import pytest

from rampup.adapters.codecs.plan_yaml import load_plan
from rampup.core.gates import Compare, Gate, Scale
from rampup.errors import InvalidInput

WORKSTATION = (Path(__file__).parents[2] / "examples" / "plans" / "workstation.yaml").read_text()


def test_the_example_plan_is_complete() -> None:
    _, plan = load_plan(WORKSTATION, "workstation.yaml")
    assert [(s.name, s.percentage_bp / 100, s.min_duration.total_seconds() / 3600) for s in plan.stages] == [
        ("Early Access", 10, 48),
        ("Expanded", 25, 48),
        ("General", 50, 48),
        ("Full Rollout", 100, 168),
    ]
    assert plan.stages[3].approval and "Support team briefed" in plan.stages[0].prerequisites
    lines = {(g.metric, g.scale): g for g in plan.gates}
    gates: dict[str, Gate] = {}
    for g in plan.gates:
        gates.setdefault(g.metric, g)  # the first line of each gate: its own thresholds
    assert set(gates) == {
        "error_rate",
        "unhandled_exceptions",
        "api_latency_p95",
        "lcp_p75",
        "engagement",
        "support_tickets",
        "lighthouse",
        "data_loss",
    }
    error = gates["error_rate"]
    assert (error.target.value, error.rollback.value, error.disable.value) == (0.001, 0.005, 0.01)  # type: ignore[union-attr]
    assert gates["lcp_p75"].rollback.value == 4000  # type: ignore[union-attr]
    assert gates["engagement"].compare is Compare.CONTROL and gates["engagement"].rollback.value == -0.10  # type: ignore[union-attr]
    assert gates["data_loss"].rollback_to == 0
    # beside the absolute lines, in the same gates: the treatment against control
    versus = lines[("error_rate", Scale.DIFFERENCE)], lines[("error_rate", Scale.RELATIVE)]
    assert [(g.compare, g.rollback.text, g.target) for g in versus] == [  # type: ignore[union-attr]
        (Compare.CONTROL, "> +0.3pp", None),
        (Compare.CONTROL, "> +50%", None),
    ]
    assert lines[("api_latency_p95", Scale.RELATIVE)].rollback.value == pytest.approx(0.1)  # type: ignore[union-attr]
    assert lines[("lcp_p75", Scale.RELATIVE)].rollback.value == pytest.approx(0.1)  # type: ignore[union-attr]
    assert plan.notify == ("rollout-channel", "support-email")


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("percentage: 25", "percentage: 5", "must rise"),
        (
            "min_duration: 48h\n    prerequisites: [Support team ready",
            "min_duration: two days\n    prerequisites: [Support team ready",
            "not a duration",
        ),
        ("metric: lcp_p75", "metric: lcp", "percentile"),
        ('disable: "> 1%"', 'disable: "> lots"', "not a threshold"),
        ("notify: [rollout-channel, support-email]", "notify: rollout-channel", "list of channel names"),
    ],
)
def test_mistakes_name_the_file_line_and_problem(old: str, new: str, words: str) -> None:
    assert old in WORKSTATION
    broken = WORKSTATION.replace(old, new, 1)
    line = next(i for i, text in enumerate(broken.splitlines(), start=1) if new.splitlines()[0] in text)
    with pytest.raises(InvalidInput) as err:
        load_plan(broken, "workstation.yaml")
    assert err.value.where is not None and err.value.where.startswith(f"workstation.yaml:{line}")
    assert words in err.value.message


def test_broken_yaml_names_the_line() -> None:
    with pytest.raises(InvalidInput) as err:
        load_plan("name: x\nflag: ws\nstages: [\n  {name: a\n", "p.yaml")
    assert err.value.where is not None and err.value.where.startswith("p.yaml:")
    assert "not valid YAML" in err.value.message


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (BILLION_LAUGHS, 5, "more than 10000 values"),
        ("name: x\nstages: &s\n  - name: a\n    more: *s\n", 4, "an alias that contains itself"),
        ("name: x\n" + "stages: " + "[" * 40 + "]" * 40 + "\n", 2, "nested deeper than 32 levels"),
        ("name: x\n1: one\n", 2, "a key is a text"),
        ("name: x\nstages:\n  - ? [a, b]\n    : 1\n", 3, "a key is a text"),
        ("name: x\nyes: 1\n", 2, "a key is a text"),
    ],
)
def test_hostile_yaml_is_refused_with_its_line(text: str, line: int, words: str) -> None:
    with pytest.raises(InvalidInput) as err:
        load_plan(text, "p.yaml")
    assert words in err.value.message and err.value.where == f"p.yaml:{line}", (
        err.value.message,
        err.value.where,
    )


def test_aliases_that_repeat_a_block_are_read() -> None:
    text = """\
name: ws-rollout
flag: ws
environment: production
stages:
  - {name: one, percentage: 10, min_duration: &soak 48h}
  - {name: two, percentage: 50, min_duration: *soak}
"""
    _, plan = load_plan(text, "p.yaml")
    assert [s.min_duration.total_seconds() for s in plan.stages] == [48 * 3600] * 2
