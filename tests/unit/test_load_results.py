"""Exact percentiles, and the parsers of Locust's CSV output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshproof.load.recording import RequestRecord
from meshproof.load.results import (
    exact_percentile,
    locust_percentile,
    parse_locust_failures,
    parse_locust_json,
    parse_locust_stats,
    summarise_records,
)

STATS_CSV = """\
Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
GET,/hello,120,3,160,163.1,124.0,176.4,34.0,30.3,0.75,160,160,160,160,170,170,170,170,180,180,180
,Aggregated,120,3,160,163.1,124.0,176.4,34.0,30.3,0.75,160,160,160,160,170,170,170,170,180,180,180
"""

FAILURES_CSV = """\
Method,Name,Error,Occurrences,First Seen,Last Seen
GET,/hello,HTTPError('503 Server Error'),3,2026-01-01T00:00:00Z,2026-01-01T00:00:01Z
"""


def test_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert exact_percentile(values, 0.5) == 50.0
    assert exact_percentile(values, 0.95) == 95.0
    assert exact_percentile(values, 0.951) == 96.0
    assert exact_percentile(values, 1.0) == 100.0
    assert exact_percentile([7.0], 0.5) == 7.0
    assert math.isnan(exact_percentile([], 0.5))
    with pytest.raises(ValueError):
        exact_percentile(values, 0.0)


@given(st.lists(st.floats(0, 1e5), min_size=1, max_size=200), st.floats(0.001, 1.0))
def test_percentile_has_at_least_its_share_at_or_under(values: list[float], q: float) -> None:
    ordered = sorted(values)
    p = exact_percentile(ordered, q)
    at_or_under = sum(v <= p for v in ordered)
    below = sum(v < p for v in ordered)
    assert at_or_under / len(ordered) >= q - 1e-9
    assert below / len(ordered) < q + 1e-9


def test_parse_locust_stats(tmp_path: Path) -> None:
    path = tmp_path / "locust_stats.csv"
    path.write_text(STATS_CSV)
    summary = parse_locust_stats(path)
    assert summary is not None
    assert (summary.requests, summary.failures) == (120, 3)
    assert summary.percentiles_ms[0.5] == 160.0
    assert summary.percentiles_ms[0.999] == 180.0
    assert summary.rps == pytest.approx(30.3)
    assert parse_locust_stats(tmp_path / "missing.csv") is None


def test_parse_locust_failures(tmp_path: Path) -> None:
    path = tmp_path / "locust_failures.csv"
    path.write_text(FAILURES_CSV)
    (failure,) = parse_locust_failures(path)
    assert (failure.name, failure.occurrences) == ("/hello", 3)
    assert parse_locust_failures(tmp_path / "missing.csv") == ()


def test_summarise_records() -> None:
    records = [
        RequestRecord(10.0, 120.5, 200, "ok", "v1", "a"),
        RequestRecord(10.1, 121.5, 200, "ok", "v2", "b"),
        RequestRecord(10.2, 300.0, 503, "http-503"),
        RequestRecord(10.3, 0.5, 0, "connection-refused"),
    ]
    summary = summarise_records(records)
    assert summary.requests == 4 and summary.failures == 2
    assert summary.failures_by_kind == {"http-503": 1, "connection-refused": 1}
    assert summary.status_counts == {200: 2, 503: 1, 0: 1}
    assert summary.versions == {"v1": 1, "v2": 1}
    assert summary.latencies_ms == (0.5, 120.5, 121.5, 300.0)
    assert summary.first_start == 10.0
    assert summary.last_end == pytest.approx(10.5)


LOCUST_JSON = [
    {
        "name": "/hello",
        "method": "GET",
        "start_time": 100.0,
        "last_request_timestamp": 110.0,
        "num_requests": 6,
        "num_failures": 1,
        "total_response_time": 900.0,
        "response_times": {"120": 3, "130": 2, "200": 1},
    },
    {
        "name": "/other",
        "method": "GET",
        "start_time": 101.0,
        "last_request_timestamp": 110.0,
        "num_requests": 4,
        "num_failures": 0,
        "total_response_time": 100.0,
        "response_times": {"25": 4},
    },
]


def test_locust_percentile_matches_locusts_rule() -> None:
    histogram = {25: 4, 120: 3, 130: 2, 200: 1}
    assert locust_percentile(histogram, 0.5) == 120.0
    # Locust's rule: a bucket is the answer once at most int(n*q) requests lie below it,
    # so exactly 40% at 25 ms (90% at 130 ms) still gives the next bucket for q=0.4 (0.9).
    assert locust_percentile(histogram, 0.39) == 25.0
    assert locust_percentile(histogram, 0.4) == 120.0
    assert locust_percentile(histogram, 0.89) == 130.0
    assert locust_percentile(histogram, 0.9) == 200.0
    assert locust_percentile(histogram, 1.0) == 200.0
    assert math.isnan(locust_percentile({}, 0.5))


def test_parse_locust_json_merges_entries(tmp_path: Path) -> None:
    path = tmp_path / "locust.json"
    path.write_text(json.dumps(LOCUST_JSON))
    summary = parse_locust_json(path)
    assert summary is not None
    assert (summary.requests, summary.failures) == (10, 1)
    assert summary.average_ms == pytest.approx(100.0)
    assert summary.rps == pytest.approx(1.0)
    assert summary.percentiles_ms[0.5] == 120.0
    assert parse_locust_json(tmp_path / "missing.json") is None


def test_parse_locust_json_after_other_output(tmp_path: Path) -> None:
    path = tmp_path / "locust.json"
    path.write_text("a locustfile printed this\n" + json.dumps(LOCUST_JSON, indent=4) + "\n")
    summary = parse_locust_json(path)
    assert summary is not None and summary.requests == 10
    path.write_text("")
    assert parse_locust_json(path) is None
