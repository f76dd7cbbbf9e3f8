"""Synthetic steps for the runner's own tests: they exercise verdict mapping, not a mesh.

Each scenario's outcome is chosen by its ``outcome`` parameter; nothing here
measures anything. The features using them live in the subdirectories and are
collected only when the runner points ``--features-dir`` at one of them.
"""

from __future__ import annotations

import threading

import pytest
from pytest_bdd import given, parsers, then, when

from meshproof.catalog import EffectiveThresholds, Guarantee
from meshproof.run.evidence import Evidence
from meshproof.run.verdicts import NotMeasurable, require
from meshproof.sli.verdict import Judgement, Verdict
from meshproof.target import ClusterSettings, Target


@given(parsers.parse("the synthetic check on cluster {cluster}"), target_fixture="checked_cluster")
def synthetic_cluster(cluster: str, target: Target) -> str:
    assert cluster in target.cluster_names, f"{cluster} is not a cluster of {target.name}"
    return cluster


@given("the synthetic check on the whole mesh", target_fixture="checked_cluster")
def synthetic_mesh() -> None:
    return None


@when("the synthetic check records what the fixtures give it")
def synthetic_fixtures(
    evidence: Evidence,
    guarantee: Guarantee,
    thresholds: EffectiveThresholds,
    scenario_cluster: ClusterSettings | None,
) -> None:
    evidence.add("guarantee", guarantee.id)
    evidence.add("thresholds", dict(thresholds.values))
    evidence.add("window_s", thresholds.window_s)
    evidence.add("context", scenario_cluster.context if scenario_cluster else None)


def _leaked_secret(target: Target) -> str:
    for cluster in target.clusters:
        if cluster.prometheus and cluster.prometheus.bearer_token:
            return cluster.prometheus.bearer_token.get_secret_value()
    return "no-token-in-this-target"


@then(parsers.parse("the synthetic outcome is {outcome}"))
def synthetic_outcome(
    outcome: str, checked_cluster: str | None, evidence: Evidence, target: Target
) -> None:
    evidence.add("synthetic_outcome", outcome)
    evidence.add("window", {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:05:00Z"})
    if outcome == "held":
        evidence.timeline("steady", "synthetic: nothing was done", at="2026-01-01T00:00:00Z")
        evidence.load(requests=100, failures=0, rps=10.0, percentiles_ms={0.95: 12.5}, users=5)
        evidence.judgement(Judgement(Verdict.HELD, "synthetic: held", {"ratio": 1.0}))
    elif outcome == "violated":
        assert outcome == "held", f"synthetic violation on {checked_cluster or 'the mesh'}"
    elif outcome == "judged-violated":
        require(Judgement(Verdict.VIOLATED, "synthetic: 97 of 100 ok, needs 99", {"ok": 97}))
    elif outcome == "recorded-violated":
        evidence.judgement(Judgement(Verdict.VIOLATED, "synthetic: recorded, never asserted", {}))
    elif outcome == "not-measurable":
        raise NotMeasurable("synthetic: the series is absent", fix="enable the synthetic exporter")
    elif outcome == "inconclusive":
        require(Judgement(Verdict.INCONCLUSIVE, "synthetic: 3 requests are too few", {"n": 3}))
    elif outcome == "skipped":
        pytest.skip("synthetic: plain skip")
    elif outcome == "slow":
        # Stands for a long measurement; the runner's interrupt test stops it midway.
        threading.Event().wait(60)
    elif outcome == "crash":
        raise RuntimeError("synthetic crash inside the check")
    elif outcome == "leak":
        secret = _leaked_secret(target)
        evidence.add("authorization", f"Bearer {secret}")
        raise AssertionError(f"synthetic violation quoting Bearer {secret}")
    else:
        raise ValueError(f"unknown synthetic outcome {outcome!r}")
