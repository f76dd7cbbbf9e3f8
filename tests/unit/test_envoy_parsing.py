"""Parsing Envoy's admin and Prometheus forms as Istio emits them (FACTS.md shapes)."""

from __future__ import annotations

import pytest

from meshproof.clients.envoy import cluster_stat, parse_clusters, parse_exposition, parse_text_stats
from meshproof.errors import MeshproofError

CLUSTER = "outbound|80||x.ns.svc.cluster.local"


def test_text_stats_with_and_without_the_istio_delimiter() -> None:
    stats = parse_text_stats(
        f"cluster.{CLUSTER};.upstream_rq_pending_overflow: 19\n"
        "cluster.inbound|8080||.upstream_rq_total: 4\n"
        "listener.0.0.0.0_15006.ssl.handshake: 12\n"
        "cluster_manager.cds.version_text: \"2026-11-26T10:00:00Z/7\"\n"
    )
    assert cluster_stat(stats, CLUSTER, "upstream_rq_pending_overflow") == 19
    assert cluster_stat(stats, "inbound|8080||", "upstream_rq_total") == 4
    assert cluster_stat(stats, CLUSTER, "upstream_rq_total") is None
    assert stats["listener.0.0.0.0_15006.ssl.handshake"] == "12"


def test_clusters_host_lines_group_by_host() -> None:
    hosts = parse_clusters(
        f"{CLUSTER}::observability_name::{CLUSTER}\n"
        f"{CLUSTER}::127.1.0.4:80::cx_active::2\n"
        f"{CLUSTER}::127.1.0.4:80::health_flags::/failed_outlier_check\n"
        f"{CLUSTER}::127.2.0.9:15443::health_flags::healthy\n"
        f"{CLUSTER}::127.2.0.9:15443::region::us-central1\n"
    )
    by_address = {h.address: h for h in hosts}
    assert set(by_address) == {"127.1.0.4:80", "127.2.0.9:15443"}
    assert not by_address["127.1.0.4:80"].healthy
    assert by_address["127.2.0.9:15443"].healthy
    assert by_address["127.2.0.9:15443"].stats["region"] == "us-central1"


def test_prometheus_form_keeps_cluster_name_label() -> None:
    samples = parse_exposition(
        "# TYPE envoy_cluster_outlier_detection_ejections_active gauge\n"
        f'envoy_cluster_outlier_detection_ejections_active{{cluster_name="{CLUSTER}"}} 1\n'
    )
    assert samples[0].name == "envoy_cluster_outlier_detection_ejections_active"
    assert samples[0].labels == {"cluster_name": CLUSTER}
    assert samples[0].value == 1.0


def test_garbage_is_an_error_not_an_empty_result() -> None:
    with pytest.raises(MeshproofError):
        parse_exposition("this is { not prometheus\n")
