"""Metric and stat shapes as FACTS.md gives them, parsed from the proxies' own endpoints."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from meshproof.lab.mesh.config import OutlierDetection, StatsMatcher
from tests.support.mesh import (
    DestinationRule,
    MeshHarness,
    MeshPki,
    Pod,
    make_pki,
    standard_mesh,
    via_sidecar,
)

pytestmark = pytest.mark.lab

FQDN = "helloworld.sample.svc.cluster.local"
URL = "http://helloworld.sample:5000/hello"
LABELS = [
    "reporter",
    "source_workload",
    "source_workload_namespace",
    "source_principal",
    "source_app",
    "source_version",
    "source_canonical_service",
    "source_canonical_revision",
    "source_cluster",
    "destination_workload",
    "destination_workload_namespace",
    "destination_principal",
    "destination_app",
    "destination_version",
    "destination_service",
    "destination_service_name",
    "destination_service_namespace",
    "destination_canonical_service",
    "destination_canonical_revision",
    "destination_cluster",
    "request_protocol",
    "response_flags",
    "connection_security_policy",
    "response_code",
    "grpc_response_status",
]
BUCKETS = [
    "0.5",
    "1",
    "5",
    "10",
    "25",
    "50",
    "100",
    "250",
    "500",
    "1000",
    "2500",
    "5000",
    "10000",
    "30000",
    "60000",
    "300000",
    "600000",
    "1800000",
    "3600000",
    "+Inf",
]


@pytest.fixture(scope="module")
def mesh_pki() -> MeshPki:
    return make_pki()


@pytest.fixture
def mesh(mesh_pki: MeshPki) -> Iterator[tuple[MeshHarness, dict[str, Pod]]]:
    h, pods = standard_mesh(mesh_pki, net=91)
    h.istiod.pods.remove(pods["v2"])  # one aws endpoint, so the tests know who served
    h.istiod.destination_rules[FQDN] = DestinationRule(outlier=OutlierDetection())
    try:
        yield h, pods
    finally:
        h.close()


def _families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_istio_metrics_parse_with_the_label_set_in_order_and_the_real_buckets(mesh) -> None:
    h, pods = mesh
    h.start()
    for _ in range(3):
        assert via_sidecar(pods["sleep"], URL).status_code == 200
    for pod, port in ((pods["sleep"], 15090), (pods["v1"], 15020)):
        text = h.metrics(pod, port)
        fams = _families(text)
        assert fams["istio_requests"].type == "counter"  # type: ignore[attr-defined]
        assert fams["istio_request_duration_milliseconds"].type == "histogram"  # type: ignore[attr-defined]
        for name in ("istio_request_bytes", "istio_response_bytes"):
            assert fams[name].type == "histogram"  # type: ignore[attr-defined]
        line = next(ln for ln in text.splitlines() if ln.startswith("istio_requests_total{"))
        assert re.findall(r'(\w+)="', line) == LABELS
        bounds = [
            m
            for m in re.findall(
                r'le="([^"]+)"',
                text.split("# TYPE istio_request_duration_milliseconds histogram")[1].split(
                    "# TYPE"
                )[0],
            )
        ]
        assert bounds[: len(BUCKETS)] == BUCKETS
        for suffix in ("_sum{", "_count{"):
            assert f"istio_request_duration_milliseconds{suffix}" in text


def test_source_and_destination_reporters_label_the_same_request(mesh) -> None:
    h, pods = mesh
    h.start()
    sleep, v1 = pods["sleep"], pods["v1"]
    assert via_sidecar(sleep, URL).status_code == 200
    samples = {}
    for pod in (sleep, v1):
        fam = _families(h.metrics(pod))["istio_requests"]
        (sample,) = [s for s in fam.samples if s.value == 1]  # type: ignore[attr-defined]
        samples[sample.labels["reporter"]] = sample.labels
    src, dst = samples["source"], samples["destination"]
    assert src["connection_security_policy"] == "unknown"
    assert dst["connection_security_policy"] == "mutual_tls"
    for labels in (src, dst):
        assert labels["source_principal"] == sleep.spiffe
        assert labels["destination_principal"] == v1.spiffe
        assert labels["source_cluster"] == labels["destination_cluster"] == "aws-eks"
        assert labels["destination_service"] == FQDN
        assert labels["destination_service_name"] == "helloworld"
        assert labels["destination_service_namespace"] == "sample"
        assert labels["destination_version"] == "v1"
        assert labels["response_flags"] == "-"
        assert labels["response_code"] == "200"


def test_envoy_stats_text_and_prometheus_forms(mesh) -> None:
    h, pods = mesh
    h.start()
    sleep = pods["sleep"]
    assert via_sidecar(sleep, URL).status_code == 200
    text = h.admin(sleep, "/stats")
    for line in text.splitlines():
        assert re.fullmatch(r"[^:\s][^\s]*: -?\d+", line), line
    assert f"cluster.outbound|5000||{FQDN};.upstream_rq_total: 1" in text
    assert "server.state: 0" in text
    prom = h.metrics(sleep)
    fams = _families(prom)
    for name in (
        "envoy_cluster_upstream_rq_total",
        "envoy_cluster_outlier_detection_ejections_active",
        "envoy_cluster_membership_healthy",
        "envoy_cluster_upstream_cx_overflow",
        "envoy_cluster_circuit_breakers_default_cx_open",
        "envoy_server_state",
    ):
        assert name in fams or name.removesuffix("_total") in fams, name
    total = fams["envoy_cluster_upstream_rq"]  # the _total counter family, as the parser names it
    assert any(
        s.labels == {"cluster_name": f"outbound|5000||{FQDN}"}  # type: ignore[attr-defined]
        for s in total.samples
    )  # type: ignore[attr-defined]
    # Envoy's tag extraction lifts a trailing response code into a label.
    assert (
        f'envoy_cluster_upstream_rq{{response_code="200",cluster_name="outbound|5000||{FQDN}"}} 1'
        in prom
    )
    assert (
        f'envoy_cluster_upstream_rq{{response_code_class="2xx",cluster_name="outbound|5000||{FQDN}"}} 1'
        in prom
    )


def test_service_cluster_stats_exist_only_when_the_stats_matcher_includes_them(mesh) -> None:
    h, pods = mesh
    h.istiod.stats_matcher = StatsMatcher()  # Istio's default: few stats
    h.start()
    sleep = pods["sleep"]
    assert via_sidecar(sleep, URL).status_code == 200
    text = h.admin(sleep, "/stats")
    assert "outlier_detection" not in text and "upstream_rq" not in text
    assert "server.state" in text and "cluster_manager.active_clusters" in text
    assert "outlier_detection" not in h.metrics(sleep)
    assert "istio_requests_total" in h.metrics(sleep)  # Istio's own metrics are always there
    h.istiod.stats_matcher = StatsMatcher(inclusion_regexps=[".*outlier_detection.*"])
    h.push()
    text = h.admin(sleep, "/stats")
    assert f"cluster.outbound|5000||{FQDN};.outlier_detection.ejections_active: 0" in text
    assert "upstream_rq_total" not in text


def test_listener_ssl_stats_in_prometheus_form(mesh) -> None:
    h, pods = mesh
    h.start()
    assert via_sidecar(pods["sleep"], URL).status_code == 200
    prom = h.metrics(pods["v1"])
    assert re.search(
        r'^envoy_listener_ssl_handshake\{listener_address="0.0.0.0_15006"\} [1-9]',
        prom,
        re.MULTILINE,
    )
