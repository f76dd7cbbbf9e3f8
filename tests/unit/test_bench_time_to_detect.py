"""time_to_detect's pure parts: Prometheus durations, the scrape interval, the recorded
violation."""

from __future__ import annotations

import pytest

from bench.figure import CannotRun
from bench.time_to_detect import duration_s, scrape_interval_s, violation_recorded


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5.0), ("1m30s", 90.0), ("500ms", 0.5),
                                               ("1h", 3600.0), ("2.5s", 2.5)])
def test_prometheus_durations(text: str, seconds: float) -> None:
    assert duration_s(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "s5", "5s junk"])
def test_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError):
        duration_s(text)


def test_the_longest_scrape_interval_counts() -> None:
    assert scrape_interval_s(["5s", "15s", "1m"]) == 60.0
    with pytest.raises(CannotRun):
        scrape_interval_s([])


def test_only_a_later_change_to_violated_of_that_guarantee_is_the_detection() -> None:
    record = {"changes": [
        {"round": 1, "guarantee": "MTLS-STRICT", "before": None, "after": "violated"},
        {"round": 2, "guarantee": "XC-LATENCY", "before": "held", "after": "violated"},
        {"round": 3, "guarantee": "MTLS-STRICT", "before": "held", "after": "not_measurable"},
        {"round": 4, "guarantee": "MTLS-STRICT", "before": "not_measurable",
         "after": "violated", "reason": "plaintext accepted"},
    ]}
    found = violation_recorded(record, "MTLS-STRICT", 1)
    assert found is not None and found["round"] == 4
    assert violation_recorded(record, "MTLS-STRICT", 4) is None
    assert violation_recorded({}, "MTLS-STRICT", 1) is None
