"""The terminal while a step runs: repeated progress lines with the time left in a window."""

from __future__ import annotations

import io
from pathlib import Path

from meshproof.report.redact import Redactor
from meshproof.run.console import Console
from meshproof.run.plan import make_plan
from meshproof.target import load_target
from tests.support.runner import LAB_LIKE, RUNNER_DATA


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def console(tmp_path: Path) -> tuple[Console, io.StringIO, Clock]:
    out, clock = io.StringIO(), Clock()
    c = Console(out, Redactor(()), clock=clock)
    target = load_target(LAB_LIKE)
    c.start(make_plan(target, "nightly", tmp_path, features_dir=RUNNER_DATA / "mixed"))
    return c, out, clock


def step(text: str, ids: tuple[str, ...] = ("CP-AVAIL",)) -> dict[str, object]:
    return {"event": "step", "ids": list(ids), "cluster": "aws-eks", "step": text}


def test_a_window_step_says_how_much_of_the_window_is_left(tmp_path: Path) -> None:
    c, out, clock = console(tmp_path)
    c.event(step("When traffic runs for the guarantee's window"))
    clock.now += 10
    c.tick()  # too soon to repeat
    clock.now += 35
    c.tick()
    clock.now += 600  # CP-AVAIL's window is 600 s on the lab-like target
    c.tick()
    lines = out.getvalue().splitlines()[2:]
    assert lines == [
        "[ phase ] CP-AVAIL aws-eks: When traffic runs for the guarantee's window",
        "[ phase ] CP-AVAIL aws-eks: When traffic runs for the guarantee's window"
        " - running for 45s, about 9m15s left of the 600s window",
        "[ phase ] CP-AVAIL aws-eks: When traffic runs for the guarantee's window"
        " - running for 10m45s, past the 600s window by 45s",
    ]


def test_other_steps_only_say_how_long_they_have_run(tmp_path: Path) -> None:
    c, out, clock = console(tmp_path)
    c.event(step("Then the proxies are in sync"))
    clock.now += 31
    c.tick()
    assert out.getvalue().splitlines()[-1] == (
        "[ phase ] CP-AVAIL aws-eks: Then the proxies are in sync - running for 31s"
    )


def test_nothing_is_repeated_once_the_scenario_ended(tmp_path: Path) -> None:
    c, out, clock = console(tmp_path)
    c.event(step("When traffic runs for the guarantee's window"))
    c.event({"event": "scenario", "nodeid": "f::t", "ids": ["CP-AVAIL"], "name": "n",
             "cluster": "aws-eks", "outcome": "passed", "evidence": {}, "duration_s": 1.0})
    before = out.getvalue()
    clock.now += 300
    c.tick()
    assert out.getvalue() == before
