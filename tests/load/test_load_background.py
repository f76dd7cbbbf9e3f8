"""Load beside other work: runs go on until released and then stop once they have enough."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from meshproof.errors import ConfigError
from meshproof.load import BackgroundLoad, LoadPlan, LoadProgress, LoadResult, bundled_locustfile
from tests.support.load_servers import load_target

pytestmark = pytest.mark.load

RUN_S = 30
"""The runs' bound: far longer than the tests let them go."""


def _plan(host: str, output_dir: Path) -> LoadPlan:
    return LoadPlan(locustfile=bundled_locustfile("helloworld"), host=host, users=2,
                    spawn_rate=100, run_time_s=RUN_S, output_dir=output_dir)


def test_runs_continue_until_released_then_stop_once_they_have_enough(tmp_path: Path) -> None:
    def enough(progress: LoadProgress) -> bool:
        return progress.requests - progress.failures >= 20

    with load_target(delay_s=0.01) as target:
        load = BackgroundLoad({"a": _plan(target.url, tmp_path / "a"),
                               "b": _plan(target.url, tmp_path / "b")}, enough=enough)
        time.sleep(4)  # far more than 20 requests each: only the release may stop them
        released = time.time()
        load.release()
        results = load.results()
    assert set(results) == {"a", "b"} and load.names == ("a", "b")
    for result in results.values():
        assert isinstance(result, LoadResult)
        assert result.stopped_early and not result.overran
        assert result.ended_at.timestamp() >= released
        assert (result.ended_at - result.started_at).total_seconds() < RUN_S / 2
        assert result.requests > 20 and len(result.ok_latencies_ms) == result.requests


def test_close_ends_runs_that_do_not_have_enough(tmp_path: Path) -> None:
    with load_target(delay_s=0.01) as target:
        load = BackgroundLoad({"a": _plan(target.url, tmp_path)}, enough=lambda p: False)
        load.release()
        load.close()
        result = load.results()["a"]
    assert isinstance(result, LoadResult) and result.stopped_early
    assert (result.ended_at - result.started_at).total_seconds() < RUN_S / 2


def test_runs_started_with_ctrl_c_ignored_still_stop_once_they_have_enough(
        tmp_path: Path) -> None:
    """A suite started as a background job of a non-interactive shell (as CI may start it)
    hands SIGINT ignored to Locust; the runs must still end when they have enough."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with load_target(delay_s=0.01) as target:
            load = BackgroundLoad({"a": _plan(target.url, tmp_path)},
                                  enough=lambda p: p.requests >= 20)
            load.release()
            result = load.results()["a"]
    finally:
        signal.signal(signal.SIGINT, previous)
    assert isinstance(result, LoadResult) and result.stopped_early and not result.overran
    assert (result.ended_at - result.started_at).total_seconds() < RUN_S / 2


def test_a_run_that_cannot_start_is_reported_by_name(tmp_path: Path) -> None:
    missing = LoadPlan(locustfile=tmp_path / "missing.py", host="http://127.0.0.1:9", users=1,
                       run_time_s=1)
    load = BackgroundLoad({"bad": missing}, not_started={"other": "no address"})
    outcome = load.results()["bad"]
    assert isinstance(outcome, ConfigError) and "does not exist" in str(outcome)
    assert load.not_started == {"other": "no address"}
