"""Timing and attributing the drill's traffic (pure logic)."""

from __future__ import annotations

from meshproof.chaos.traffic import (
    Sample,
    first_answer_from,
    samples_of,
    served_by,
    success_between,
)

PODS = {"helloworld-v1-abc": "aws-eks", "helloworld-v2-def": "gcp-gke"}


def test_answers_are_attributed_to_the_cluster_of_the_pod_they_name() -> None:
    assert served_by("Hello version: v2, instance: helloworld-v2-def\n", PODS) == "gcp-gke"
    assert served_by("no healthy upstream", PODS) is None


def test_a_batch_is_spread_over_its_latencies() -> None:
    attempts = [{"status": 200, "latency_ms": 500, "body": "helloworld-v1-abc"},
                {"status": 0, "latency_ms": 250, "body": ""},
                {"status": 503, "latency_ms": 1, "body": "no healthy upstream"}]
    samples = samples_of(100.0, attempts, PODS)
    assert [s.at for s in samples] == [100.0, 100.5, 100.75]
    assert [s.ok for s in samples] == [True, False, False]
    assert samples[0].served_by == "aws-eks"


def test_window_and_recovery() -> None:
    samples = [Sample(1.0, 200, "aws-eks"), Sample(2.0, 503, None), Sample(3.0, 200, "gcp-gke"),
               Sample(4.0, 200, "aws-eks"), Sample(5.0, 200, "aws-eks")]
    assert success_between(samples, 2.0, 4.0) == (2, 3)
    assert success_between(samples, 10.0, 11.0) == (0, 0)
    assert first_answer_from(samples, "aws-eks", after=2.5) == 4.0
    assert first_answer_from(samples, "gcp-gke", after=3.5) is None
