"""Report plots draw only what the report holds; per-cluster verdicts never invent a "held"."""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

from meshproof.report.clusters import cluster_verdicts
from meshproof.report.html import render_html
from meshproof.report.model import (
    ClusterResult,
    DrillTimeline,
    EvidenceItem,
    GuaranteeResult,
    Thresholds,
    TimelineEvent,
)
from meshproof.report.plots import describe_series, fault_windows, guarantee_plots, series_of
from meshproof.sli.verdict import Verdict
from tests.report.recorded import recorded_report

T0 = 1_780_000_000


def item(key: str, value: Any, cluster: str | None = "aws-eks") -> EvidenceItem:
    return EvidenceItem(key, value, cluster, "2026-01-01T00:00:00+00:00", "s")


def guarantee(*, evidence: tuple[EvidenceItem, ...] = (), judgements: tuple[dict[str, Any], ...]
              = (), events: tuple[TimelineEvent, ...] = (), cluster: str = "aws-eks",
              verdict: Verdict = Verdict.HELD) -> GuaranteeResult:
    return GuaranteeResult(
        id="EW-FAILOVER", statement="s", area="a", tier="core", destructive=True, measure="m",
        runbook=(), thresholds=Thresholds({"max_ms": 100.0, "min_success_ratio": 0.99}, 120),
        verdict=verdict, reason="r",
        clusters=(ClusterResult(cluster, verdict, "r", evidence=evidence,
                                judgements=judgements),),
        drill=DrillTimeline(events) if events else None,
    )


def png(uri: str) -> bytes:
    head, data = uri.split(",", 1)
    assert head == "data:image/png;base64"
    return base64.b64decode(data)


def test_only_well_formed_series_are_plotted() -> None:
    good = {"points": [[T0, 41.0], [T0 + 10, 44.5]], "unit": "ms", "label": "p95"}
    g = guarantee(evidence=(
        item("latency", good),
        item("no_unit", {"points": [[T0, 1.0]]}),
        item("words", {"points": [[T0, "fast"]], "unit": "ms"}),
        item("empty", {"points": [], "unit": "ratio"}),
        item("number", 0.99),
    ))
    [series] = series_of(g)
    assert series.label == "p95 (aws-eks)" and [v for _, v in series.points] == [41.0, 44.5]
    assert describe_series(good) is not None and describe_series(0.99) is None


def test_fault_windows_pair_fault_and_rollback_per_cluster() -> None:
    at = "2026-01-01T00:0{}:00+00:00".format
    g = guarantee(events=(
        TimelineEvent(at(1), "fault", "gateway down", "aws-eks"),
        TimelineEvent(at(2), "fault", "istiod down", "gcp-gke"),
        TimelineEvent(at(3), "rollback", "gateway back", "aws-eks"),
    ))
    closed, unclosed = fault_windows(g)
    assert closed.cluster == "aws-eks" and closed.end is not None
    assert unclosed.cluster == "gcp-gke" and unclosed.end is None


def test_an_end_without_a_cluster_closes_the_open_fault() -> None:
    g = guarantee(events=(
        TimelineEvent("2026-01-01T00:01:00+00:00", "fault-start", "istiod 1 → 0", "gcp-gke"),
        TimelineEvent("2026-01-01T00:02:00+00:00", "ejection", "endpoint ejected", "aws-eks"),
        TimelineEvent("2026-01-01T00:03:00+00:00", "fault-end", "istiod 0 → 1", None),
    ))
    [window] = fault_windows(g)
    assert window.cluster == "gcp-gke" and window.end is not None


def test_a_guarantee_without_data_gets_no_plot() -> None:
    assert guarantee_plots(guarantee(evidence=(item("ratio", 1.0),))) == []


def test_a_drill_without_series_says_so_and_shows_its_timeline() -> None:
    g = guarantee(events=(TimelineEvent("2026-01-01T00:01:00+00:00", "fault", "down"),))
    traffic, timeline = guarantee_plots(g)
    assert "no series" in traffic.alt and "1 fault window" in traffic.alt
    assert timeline.title == "EW-FAILOVER: drill timeline"
    assert png(traffic.data_uri)[:4] == b"\x89PNG"


def test_a_split_judgement_is_plotted_with_its_p_value() -> None:
    split = {"verdict": "held", "reason": "ok", "cluster": "aws-eks", "evidence": {
        "counts": {"v1": 452, "v2": 48}, "expected": {"v1": 0.9, "v2": 0.1}, "n": 500,
        "p_value": 0.78, "alpha": 0.001}}
    [plot] = guarantee_plots(guarantee(judgements=(split,)))
    assert plot.title == "EW-FAILOVER: observed vs expected split" and "aws-eks" in plot.alt


def test_a_mesh_check_gives_each_judged_cluster_its_verdict() -> None:
    judged = (
        {"verdict": "held", "reason": "fine", "cluster": "aws-eks", "evidence": {}},
        {"verdict": "violated", "reason": "slow", "cluster": "gcp-gke", "evidence": {}},
    )
    g = guarantee(cluster="mesh", verdict=Verdict.VIOLATED, judgements=judged,
                  evidence=(item("query", "q", None), item("ratio", 0.5, "gcp-gke")))
    verdicts = {v.cluster: v for v in cluster_verdicts(g, ["gcp-gke", "aws-eks"])}
    assert list(verdicts) == ["gcp-gke", "aws-eks"]
    assert verdicts["aws-eks"].verdict is Verdict.HELD
    assert verdicts["gcp-gke"].verdict is Verdict.VIOLATED and verdicts["gcp-gke"].reason == "slow"
    assert [e.key for e in verdicts["gcp-gke"].evidence] == ["query", "ratio"]


def test_an_unexplained_mesh_failure_is_never_split_into_held_clusters() -> None:
    judged = ({"verdict": "held", "reason": "fine", "cluster": "aws-eks", "evidence": {}},)
    g = guarantee(cluster="mesh", verdict=Verdict.VIOLATED, judgements=judged)
    [only] = cluster_verdicts(g)
    assert only.cluster == "mesh" and only.verdict is Verdict.VIOLATED


def test_the_html_says_when_no_series_was_recorded() -> None:
    report = recorded_report()
    html = render_html(report)
    assert "No latency or success-rate series over time were recorded in this run" in html
    assert html.count("<img ") == 2  # XC-LATENCY's paths and ROUTING's split
    series = {"points": [[T0, 40.0], [T0 + 15, 42.0]], "unit": "ms"}
    first = report.guarantees[0]
    with_series = dataclasses.replace(first, clusters=(dataclasses.replace(
        first.clusters[0], evidence=(item("latency", series),)),))
    html = render_html(dataclasses.replace(
        report, guarantees=(with_series, *report.guarantees[1:])))
    assert "No latency or success-rate series" not in html
    assert "latency and success rate over the run" in html
