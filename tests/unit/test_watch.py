"""`meshproof run --watch`: bounded rounds, verdict changes on the terminal and in watch.json.

Rounds here are a stand-in that writes a recorded lab report with chosen
verdicts, and the clock is a counter: what is tested is the watch's own logic.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import IO

import pytest

from meshproof.catalog import load_catalog
from meshproof.errors import ConfigError, MeshproofError
from meshproof.target import load_target
from meshproof.watch import RoundRunner, watch, watch_command
from tests.support.runner import LAB_LIKE

REPORT = json.loads((Path(__file__).parents[1] / "data" / "compare" / "healthy.report.json")
                    .read_text(encoding="utf-8"))


class FakeClock:
    """Each round takes ``round_s`` seconds; sleeping advances the clock."""

    def __init__(self, round_s: float) -> None:
        self.now, self.round_s = 0.0, round_s
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def rounds(clock: FakeClock, verdicts: list[dict[str, str] | None]) -> RoundRunner:
    """A round runner writing ``verdicts[i]`` over the recorded report (None: cannot run)."""
    calls = iter(verdicts)

    def run_round(directory: Path, out: IO[str]) -> int:
        clock.now += clock.round_s
        changed = next(calls)
        if changed is None:
            raise MeshproofError("the API server of aws-eks is unreachable")
        report = json.loads(json.dumps(REPORT))
        for g in report["guarantees"]:
            g["verdict"] = changed.get(g["id"], "held")
        (directory / "report.json").write_text(json.dumps(report), encoding="utf-8")
        out.write("round output\n")
        return 1 if "violated" in changed.values() else 0

    return run_round


def test_rounds_are_bounded_by_the_duration(tmp_path: Path) -> None:
    clock = FakeClock(round_s=10)
    out = io.StringIO()
    code = watch(rounds(clock, [{}] * 10), tmp_path, profile="nightly", interval=30,
                 duration=100, out=out, clock=clock, sleep=clock.sleep)
    record = json.loads((tmp_path / "watch.json").read_text())
    # Rounds start at 0, 30, 60, 90; the next start (120) is past the duration.
    assert [r["round"] for r in record["rounds"]] == [1, 2, 3, 4]
    assert clock.slept == [20, 20, 20]
    assert code == 0
    assert (tmp_path / "rounds" / "004" / "report.json").is_file()
    assert (tmp_path / "report.json").is_file()


def test_a_round_longer_than_the_interval_is_followed_at_once(tmp_path: Path) -> None:
    clock = FakeClock(round_s=50)
    watch(rounds(clock, [{}] * 5), tmp_path, profile="nightly", interval=30, duration=100,
          out=io.StringIO(), clock=clock, sleep=clock.sleep)
    assert clock.slept == [0, 0]


def test_each_verdict_change_is_one_line_and_joins_the_timeline(tmp_path: Path) -> None:
    clock = FakeClock(round_s=1)
    out = io.StringIO()
    code = watch(rounds(clock, [{}, {"XC-LATENCY": "violated"}, {"XC-LATENCY": "violated"},
                                {}]),
                 tmp_path, profile="nightly", interval=10, duration=40, out=out, clock=clock,
                 sleep=clock.sleep)
    assert code == 1
    lines = [line for line in out.getvalue().splitlines() if line.startswith("[ change ]")]
    first_seen = [line for line in lines if "first seen" in line]
    assert len(first_seen) == len(REPORT["guarantees"])
    later = [line for line in lines if "first seen" not in line]
    assert len(later) == 2
    assert "round 2 XC-LATENCY: held -> violated" in later[0]
    assert "round 4 XC-LATENCY: violated -> held" in later[1]
    record = json.loads((tmp_path / "watch.json").read_text())
    changes = [c for c in record["changes"] if c["before"] is not None]
    assert [(c["round"], c["guarantee"], c["before"], c["after"]) for c in changes] == [
        (2, "XC-LATENCY", "held", "violated"), (4, "XC-LATENCY", "violated", "held")]


def test_a_round_that_cannot_run_is_recorded_and_the_watch_goes_on(tmp_path: Path) -> None:
    clock = FakeClock(round_s=1)
    out = io.StringIO()
    code = watch(rounds(clock, [{}, None, {}]), tmp_path, profile="nightly", interval=10,
                 duration=30, out=out, clock=clock, sleep=clock.sleep)
    record = json.loads((tmp_path / "watch.json").read_text())
    assert record["rounds"][1]["problem"] == "the API server of aws-eks is unreachable"
    assert record["rounds"][1]["verdicts"] == {}
    assert "round 2: could not run" in out.getvalue()
    # Round 3 is compared with round 1: nothing changed.
    assert all(c["round"] == 1 for c in record["changes"])
    assert code == 0


def test_no_report_at_all_is_exit_2(tmp_path: Path) -> None:
    clock = FakeClock(round_s=1)
    code = watch(rounds(clock, [None, None]), tmp_path, profile="nightly", interval=10,
                 duration=20, out=io.StringIO(), clock=clock, sleep=clock.sleep)
    assert code == 2


def test_watch_refuses_destructive_profiles(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="non-destructive"):
        watch_command(load_target(LAB_LIKE), load_catalog(), "preupgrade", tmp_path,
                      lambda directory, out: 0, 10, 20)


@pytest.mark.parametrize(("interval", "duration"), [(0, 10), (10, -1)])
def test_watch_refuses_non_positive_times(tmp_path: Path, interval: float,
                                          duration: float) -> None:
    with pytest.raises(MeshproofError, match="must be > 0"):
        watch(lambda directory, out: 0, tmp_path, profile="nightly", interval=interval,
              duration=duration, out=io.StringIO())


def test_watch_options_without_watch_are_a_usage_error(
        capsys: pytest.CaptureFixture[str]) -> None:
    from meshproof.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["run", "--target", str(LAB_LIKE), "--profile", "nightly", "--interval", "5"])
    assert exited.value.code == 2
    assert "--interval and --duration go with --watch" in capsys.readouterr().err


def test_run_watch_end_to_end_on_synthetic_features(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from meshproof.cli import main

    held = Path(__file__).parents[1] / "data" / "runner" / "held"
    code = main(["run", "--target", str(LAB_LIKE), "--profile", "nightly", "--watch",
                 "--interval", "1", "--duration", "1", "--features-dir", str(held),
                 "--report-dir", str(tmp_path)])
    assert code == 0
    record = json.loads((tmp_path / "watch.json").read_text())
    assert len(record["rounds"]) == 1
    assert record["rounds"][0]["verdicts"]["MTLS-STRICT"] == "held"
    assert (tmp_path / "index.html").is_file()
    out = capsys.readouterr().out
    assert "[ change ]" in out and "round 1 MTLS-STRICT: first seen -> held" in out
    assert out.rstrip().splitlines()[-1].startswith("[ watch ] 1 round,")
