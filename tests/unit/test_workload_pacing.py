"""The nightly's probe traffic: how much of it the latency sample needs, and its pacing."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from meshproof.checks.workload import CHUNK, burst, cross_cluster_volume


class RecordingFleet:
    """Stands in for ``ProbeFleet.request``: records when each call started, answers at once."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.lock = threading.Lock()

    def request(self, cluster: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.starts.append(time.monotonic())
        return {"results": [{"status": 200}] * int(spec["count"])}


def test_two_clusters_need_twice_the_sample_and_the_margin() -> None:
    assert cross_cluster_volume(1000, 2) == 2400
    assert cross_cluster_volume(1000, 3) == 1800
    assert cross_cluster_volume(1000, 1) == 1200


def test_an_unpaced_burst_makes_every_request_in_calls_of_a_chunk() -> None:
    fleet = RecordingFleet()
    results = burst(fleet, "c", "mesh", {"url": "u"}, total=4 * CHUNK + 1,  # type: ignore[arg-type]
                    parallel=4)
    assert len(results) == 4 * CHUNK + 1 and len(fleet.starts) == 5


@pytest.mark.parametrize("rate", [200.0, 400.0])
def test_a_paced_burst_spreads_its_calls_over_total_by_rate(rate: float) -> None:
    fleet = RecordingFleet()
    total = 4 * CHUNK + 10
    began = time.monotonic()
    results = burst(fleet, "c", "mesh", {"url": "u"}, total=total, parallel=4,  # type: ignore[arg-type]
                    rate=rate)
    assert len(results) == total
    offsets = sorted(s - began for s in fleet.starts)
    # Call k may not start before the requests ahead of it allow at that rate.
    for k, offset in enumerate(offsets):
        assert offset >= k * CHUNK / rate - 0.01, (k, offset)
