"""The plugin that queues test modules heaviest first (`tests/support/schedule.py`), run by pytest's `pytester`
on a suite of its own: five modules of two tests each, whose every phase (setup, call, teardown) reports the
duration its module declares, so what is recorded is exact and the order it gives is known."""

import json

import pytest

PHASE_SECONDS = """\
import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    report.duration = item.module.PHASE_SECONDS
    return report
"""

RECORDED = {
    "tests/test_d_heavy.py": 50.0,
    "tests/test_e_big.py": 30.0,
    "tests/test_gone.py": 20.0,  # a module since deleted: still counts for the median until a recording
    "tests/test_c_mid.py": 10.0,
    "tests/test_a_light.py": 1.0,
}


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(PHASE_SECONDS)
    tests = pytester.mkdir("tests")
    seconds = {"a_light": 12.5, "b_new": 0.5, "c_mid": 1.0, "d_heavy": 1.0, "e_big": 1.0}
    for name, phase in seconds.items():
        (tests / f"test_{name}.py").write_text(
            f"PHASE_SECONDS = {phase}\n\n\ndef test_one():\n    pass\n\n\ndef test_two():\n    pass\n"
        )
    (tests / "module_seconds.json").write_text(json.dumps(RECORDED))
    return pytester


def run_order(suite: pytest.Pytester, *args: str) -> list[str]:
    """The tests in the order they ran, module and name."""
    run = suite.inline_run("-p", "tests.support.schedule", *args)
    assert run.ret == pytest.ExitCode.OK
    calls = [r for r in run.getreports("pytest_runtest_logreport") if r.when == "call"]
    return [r.nodeid.removeprefix("tests/test_").replace(".py::test", "") for r in calls]


def test_modules_run_heaviest_first_each_whole_and_a_new_one_as_the_median(suite: pytest.Pytester) -> None:
    # b_new is not in the file: the median of the five recorded (20 s) puts it between e_big and c_mid.
    assert run_order(suite) == [
        "d_heavy_one",
        "d_heavy_two",
        "e_big_one",
        "e_big_two",
        "b_new_one",
        "b_new_two",
        "c_mid_one",
        "c_mid_two",
        "a_light_one",
        "a_light_two",
    ]


def test_recording_replaces_what_was_measured_keeps_the_rest_and_orders_the_next_run(
    suite: pytest.Pytester,
) -> None:
    run_order(suite, "tests/test_a_light.py", "tests/test_b_new.py", "--record-module-seconds")
    recorded = json.loads((suite.path / "tests" / "module_seconds.json").read_text())
    # Two tests × setup, call and teardown each: 6 phases. The deleted module is dropped, heaviest first.
    assert list(recorded.items()) == [
        ("tests/test_a_light.py", 75.0),
        ("tests/test_d_heavy.py", 50.0),
        ("tests/test_e_big.py", 30.0),
        ("tests/test_c_mid.py", 10.0),
        ("tests/test_b_new.py", 3.0),
    ]
    assert [name.removesuffix("_one") for name in run_order(suite)[::2]] == [
        "a_light",
        "d_heavy",
        "e_big",
        "c_mid",
        "b_new",
    ]


def test_without_the_option_nothing_is_written(suite: pytest.Pytester) -> None:
    run_order(suite)
    assert json.loads((suite.path / "tests" / "module_seconds.json").read_text()) == RECORDED
