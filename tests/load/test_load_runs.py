"""run_load against loopback servers with known behaviour: counts, exact latencies, failures.

Every run is a real Locust subprocess of a few seconds; the server counts what
it did, so Locust's numbers are checked against an independent witness.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from meshproof.load import LoadPlan, LoadProgress, LoadResult, bundled_locustfile, run_load
from meshproof.load.recording import read_records
from tests.support.load_servers import LoadTarget, load_target, refused_port

pytestmark = pytest.mark.load

USERS = 4
RUN_S = 3
DELAY_S = 0.12


@dataclass
class _Run:
    result: LoadResult
    target: LoadTarget
    progress: list[LoadProgress]


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Run]:
    """One load against a server that waits 120 ms, answers 503 to every 4th request, v1/v2/v2."""
    progress: list[LoadProgress] = []
    with load_target(
        delay_s=DELAY_S, statuses=(200, 200, 200, 503), versions=("v1", "v2", "v2")
    ) as target:
        result = run_load(
            LoadPlan(
                locustfile=bundled_locustfile("helloworld"),
                host=target.url,
                users=USERS,
                spawn_rate=100,
                run_time_s=RUN_S,
                progress_interval_s=1,
                on_progress=progress.append,
                options={"hello-header": "env:canary"},
                output_dir=tmp_path_factory.mktemp("mixed"),
            )
        )
        yield _Run(result, target, progress)


def test_request_count_matches_the_server(mixed_run: _Run) -> None:
    result, target = mixed_run.result, mixed_run.target
    assert result.requests > 0
    # The server may have started requests Locust abandoned when it stopped.
    assert result.requests <= target.started <= result.requests + USERS
    assert result.locust is not None and result.locust.requests == result.requests


def test_exact_percentiles_follow_the_server_delay(mixed_run: _Run) -> None:
    result = mixed_run.result
    p50 = result.exact_percentiles_ms[0.5]
    assert DELAY_S * 1000 <= p50 < DELAY_S * 1000 + 30
    assert result.exact_percentile(0.01) >= DELAY_S * 1000
    assert result.share_at_or_under(DELAY_S * 1000 - 1) == 0.0
    # Locust's own percentile is rounded to 10 ms steps in this range; the exact one is not.
    assert result.locust is not None
    locust_p50 = result.locust.percentiles_ms[0.5]
    assert locust_p50 % 10 == 0
    assert p50 != locust_p50
    assert abs(p50 - locust_p50) <= 10


def test_failures_are_counted_by_status(mixed_run: _Run) -> None:
    result, target = mixed_run.result, mixed_run.target
    failed_503 = result.failures_by_kind["http-503"]
    assert set(result.failures_by_kind) == {"http-503"}
    assert result.failures == failed_503 == result.status_counts[503]
    assert abs(failed_503 - target.answered[503]) <= USERS
    assert abs(failed_503 - result.requests / 4) <= USERS
    assert result.exit_code == 3  # Locust's "there were failures", not a crash
    # Locust's failures CSV is rewritten every second, so it may lag by the last one.
    assert 0 < sum(f.occurrences for f in result.locust_failures) <= failed_503


def test_versions_add_up(mixed_run: _Run) -> None:
    result, target = mixed_run.result, mixed_run.target
    assert set(result.versions) == {"v1", "v2"}
    assert (
        sum(result.versions.values())
        == result.status_counts[200]
        == result.requests - result.failures
    )
    for version, count in result.versions.items():
        assert abs(count - target.answered_versions[version]) <= USERS


def test_locustfile_options_reach_the_requests(mixed_run: _Run) -> None:
    with mixed_run.target.lock:
        assert set(mixed_run.target.env_headers) == {"canary"}
    assert "--hello-header" in mixed_run.result.command


def test_run_stops_by_itself_within_its_bound(mixed_run: _Run) -> None:
    result = mixed_run.result
    assert not result.overran
    took = (result.ended_at - result.started_at).total_seconds()
    assert RUN_S <= took < RUN_S + 5
    assert "--host" in result.command and "-t" in result.command


def test_progress_is_reported(mixed_run: _Run) -> None:
    progress = mixed_run.progress
    assert progress, "no progress report during a 3 s run with a 1 s interval"
    assert all(p.total_s == RUN_S for p in progress)
    assert [p.requests for p in progress] == sorted(p.requests for p in progress)
    assert progress[-1].line().startswith("load: ")


def test_locust_never_enters_this_process(mixed_run: _Run) -> None:
    assert mixed_run.result.requests > 0
    assert "locust" not in sys.modules


def test_refused_target_is_reported_as_failures(tmp_path: Path) -> None:
    result = run_load(
        LoadPlan(
            locustfile=bundled_locustfile("helloworld"),
            host=f"http://127.0.0.1:{refused_port()}",
            users=2,
            spawn_rate=100,
            run_time_s=1,
            output_dir=tmp_path,
        )
    )
    assert result.requests > 0
    assert result.refused == result.failures == result.requests
    assert result.status_counts == {0: result.requests}
    assert not result.overran


def test_step_shape_adds_users(tmp_path: Path) -> None:
    with load_target(delay_s=0.1) as target:
        result = run_load(
            LoadPlan(
                locustfile=bundled_locustfile("helloworld"),
                host=target.url,
                users=3,
                spawn_rate=100,
                run_time_s=3,
                shape="step",
                step_users=1,
                step_s=1,
                output_dir=tmp_path,
            )
        )
    records = list(read_records(tmp_path / "records"))
    first = min(r.start for r in records)
    per_second = Counter(int(r.start - first) for r in records)
    # One user makes ~10 requests a second against a 100 ms server; three make ~30.
    assert per_second[0] <= 12
    assert per_second[2] >= 2 * per_second[0]
    assert result.requests == len(records)


def test_distributed_run_counts_every_worker(tmp_path: Path) -> None:
    with load_target(delay_s=0.05) as target:
        result = run_load(
            LoadPlan(
                locustfile=bundled_locustfile("helloworld"),
                host=target.url,
                users=4,
                spawn_rate=100,
                run_time_s=2,
                workers=2,
                output_dir=tmp_path,
            )
        )
        started = target.started
    assert result.workers == 2 and not result.overran
    assert len(list((tmp_path / "records").glob("requests-*.tsv"))) == 2
    assert result.requests <= started <= result.requests + 4
    assert result.locust is not None and result.locust.requests == result.requests
    assert "--master" in result.command
