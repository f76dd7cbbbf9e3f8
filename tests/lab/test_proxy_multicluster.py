"""Across clusters: east-west SNI passthrough with WAN delay, outlier ejection and failover,
connection-pool overflow."""

from __future__ import annotations

import re
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from meshproof.lab.mesh.config import (
    ConnectionPool,
    HttpRoute,
    OutlierDetection,
    Retries,
    RouteDestination,
    WanDelay,
)
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
URL = "http://helloworld.sample.svc.cluster.local:5000/hello"
CLUSTER = f"cluster.outbound|5000||{FQDN};."
SNI = f"outbound_.5000_._.{FQDN}"


@pytest.fixture(scope="module")
def mesh_pki() -> MeshPki:
    return make_pki()


@pytest.fixture
def mesh(mesh_pki: MeshPki) -> Iterator[tuple[MeshHarness, dict[str, Pod]]]:
    h, pods = standard_mesh(mesh_pki, net=81)
    h.istiod.pods.remove(pods["v2"])
    try:
        yield h, pods
    finally:
        h.close()


def _cluster_of(r: requests.Response) -> str:
    assert r.status_code == 200, (r.status_code, r.text)
    return r.text.rsplit("cluster: ", 1)[1].strip()


def _timed(pod: Pod, url: str, n: int) -> list[float]:
    out = []
    with requests.Session() as s:
        for _ in range(n):
            t0 = time.monotonic()
            assert via_sidecar(pod, url, session=s).status_code == 200
            out.append((time.monotonic() - t0) * 1000)
    return out


def test_remote_endpoint_is_reached_through_the_east_west_gateway_by_sni(mesh) -> None:
    h, pods = mesh
    h.istiod.pods.remove(pods["v1"])  # helloworld only in gcp-gke now
    h.start()
    sleep, ew = pods["sleep"], pods["ew_gcp"]
    r = via_sidecar(sleep, URL)
    assert _cluster_of(r) == "gcp-gke"
    assert "127.82.0.100:15443" in sleep.logs[-1]  # the upstream host is the remote gateway
    assert h.stat(ew, f"cluster.{SNI};.upstream_cx_total") == 1
    # The caller's identity crosses the gateway intact: the gateway never terminates mTLS.
    gcp_v1 = pods["gcp_v1"]
    assert gcp_v1.proxy is not None
    assert (
        gcp_v1.proxy.runtime.metrics.requests_total(
            reporter="destination",
            source_principal=sleep.spiffe,
            source_cluster="aws-eks",
            destination_cluster="gcp-gke",
            connection_security_policy="mutual_tls",
        )
        == 1
    )
    assert sleep.proxy is not None
    assert (
        sleep.proxy.runtime.metrics.requests_total(
            reporter="source", destination_cluster="gcp-gke", source_cluster="aws-eks"
        )
        == 1
    )
    ew_metrics = h.metrics(ew)
    assert 'cluster_name="outbound_.5000_._.helloworld.sample.svc.cluster.local"' in ew_metrics
    assert re.search(
        r'^istio_tcp_connections_opened_total\{reporter="source",'
        r'source_workload="istio-eastwestgateway".*'
        r'destination_service="helloworld.sample.svc.cluster.local".*'
        r'request_protocol="tcp".*\} 1$',
        ew_metrics,
        re.MULTILINE,
    )
    assert (
        "response_code="
        not in ew_metrics.split("istio_tcp_connections_opened_total{")[1].split("}")[0]
    )


def test_cross_cluster_latency_is_real_and_follows_the_wan_delay(mesh) -> None:
    h, pods = mesh
    h.istiod.wan_delay = WanDelay(min_ms=10, max_ms=20)
    h.istiod.destination_rules[FQDN] = DestinationRule(outlier=OutlierDetection())
    h.start()
    sleep = pods["sleep"]
    local = _timed(sleep, URL, 20)  # locality LB keeps these in aws-eks
    h.istiod.pods.remove(pods["v1"])
    h.push()
    remote = _timed(sleep, URL, 21)[1:]  # the first pays the TLS handshake across the WAN
    assert statistics.median(local) < 20
    # One round trip = two one-way delays of 10–20 ms each, on a reused connection: at least
    # 20 ms, typically ~30 ms (bounds leave room for a loaded test machine).
    assert min(remote) >= 20
    assert statistics.median(remote) < 70
    text = h.metrics(sleep)
    assert 'istio_request_duration_milliseconds_bucket{reporter="source"' in text


def test_slow_wan_pushes_cross_cluster_latency_over_100_ms(mesh) -> None:
    h, pods = mesh
    h.istiod.pods.remove(pods["v1"])
    h.istiod.wan_delay = WanDelay(min_ms=55, max_ms=70)
    h.start()
    remote = _timed(pods["sleep"], URL, 6)[1:]
    assert min(remote) > 100


def test_a_healed_wan_is_fast_again_on_connections_already_open(mesh) -> None:
    """A WAN's latency is the network's, not the connection's: when it changes, the sidecar's
    pooled connection through the east-west gateway, opened while it was slow, gets the new
    latency on its next request."""
    h, pods = mesh
    h.istiod.pods.remove(pods["v1"])
    h.istiod.wan_delay = WanDelay(min_ms=55, max_ms=70)
    h.start()
    slow = _timed(pods["sleep"], URL, 4)[1:]
    h.istiod.wan_delay = WanDelay()
    h.push()
    fast = _timed(pods["sleep"], URL, 6)[1:]
    assert min(slow) > 100
    assert statistics.median(fast) < 100, (slow, fast)


def test_outlier_ejects_after_5_consecutive_5xx_and_fails_over_to_the_other_cluster(mesh) -> None:
    h, pods = mesh
    h.istiod.destination_rules[FQDN] = DestinationRule(
        outlier=OutlierDetection(
            consecutive_5xx_errors=5, base_ejection_time=30, max_ejection_percent=50
        ),
    )
    h.istiod.virtual_services[FQDN] = [
        HttpRoute(
            destinations=[RouteDestination(host=FQDN, port=5000)], retries=Retries(attempts=0)
        )
    ]
    h.start()
    sleep, v1 = pods["sleep"], pods["v1"]
    assert v1.app_server is not None
    # Healthy: locality LB keeps every request in aws-eks.
    assert {_cluster_of(via_sidecar(sleep, URL)) for _ in range(5)} == {"aws-eks"}
    v1.app_server.fail_status = 503
    codes = [via_sidecar(sleep, URL).status_code for _ in range(5)]
    assert codes == [503] * 5
    assert h.stat(sleep, CLUSTER + "outlier_detection.ejections_enforced_consecutive_5xx") == 1
    assert h.stat(sleep, CLUSTER + "outlier_detection.ejections_active") == 1
    clusters = h.admin(sleep, "/clusters")
    assert f"outbound|5000||{FQDN}::{v1.ip}:5000::health_flags::/failed_outlier_check" in clusters
    # Failover: the rest go to gcp-gke through its east-west gateway.
    assert {_cluster_of(via_sidecar(sleep, URL)) for _ in range(10)} == {"gcp-gke"}
    assert (
        'envoy_cluster_outlier_detection_ejections_active{cluster_name="outbound|5000||'
        'helloworld.sample.svc.cluster.local"} 1' in h.metrics(sleep)
    )


def test_default_max_ejection_percent_ejects_nothing_with_two_hosts(mesh) -> None:
    h, pods = mesh
    h.istiod.destination_rules[FQDN] = DestinationRule(outlier=OutlierDetection())
    h.istiod.virtual_services[FQDN] = [
        HttpRoute(
            destinations=[RouteDestination(host=FQDN, port=5000)], retries=Retries(attempts=0)
        )
    ]
    h.start()
    sleep, v1 = pods["sleep"], pods["v1"]
    assert v1.app_server is not None
    v1.app_server.fail_status = 503
    assert Counter(via_sidecar(sleep, URL).status_code for _ in range(10)) == Counter({503: 10})
    assert h.stat(sleep, CLUSTER + "outlier_detection.ejections_overflow") == 2
    assert h.stat(sleep, CLUSTER + "outlier_detection.ejections_enforced_total") == 0


def test_without_outlier_detection_traffic_spreads_over_both_clusters(mesh) -> None:
    h, pods = mesh
    h.start()
    seen = Counter(_cluster_of(via_sidecar(pods["sleep"], URL)) for _ in range(10))
    assert seen == Counter({"aws-eks": 5, "gcp-gke": 5})


def test_connection_pool_overflow_is_shed_with_503_uo(mesh) -> None:
    h, pods = mesh
    h.istiod.pods.remove(pods["gcp_v1"])
    h.istiod.destination_rules[FQDN] = DestinationRule(
        pool=ConnectionPool(max_connections=1, http1_max_pending_requests=1),
    )
    h.start()
    sleep, v1 = pods["sleep"], pods["v1"]
    assert v1.app_server is not None
    v1.app_server.delay = 0.3
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: via_sidecar(sleep, URL), range(8)))
    shed = [r for r in responses if r.status_code == 503]
    assert 1 <= len([r for r in responses if r.status_code == 200]) <= 7
    assert shed, [r.status_code for r in responses]
    for r in shed:
        assert r.headers["x-envoy-overloaded"] == "true"
        assert r.text == (
            "upstream connect error or disconnect/reset before headers. reset reason: overflow"
        )
    assert h.stat(sleep, CLUSTER + "upstream_rq_pending_overflow") == len(shed)
    assert h.stat(sleep, CLUSTER + "upstream_cx_overflow") >= len(shed)
    assert sleep.proxy is not None
    assert sleep.proxy.runtime.metrics.requests_total(
        reporter="source", response_flags="UO", response_code="503"
    ) == len(shed)


def test_losing_the_remote_east_west_gateway_is_absorbed_by_retries(mesh) -> None:
    h, pods = mesh
    h.start()
    sleep, ew = pods["sleep"], pods["ew_gcp"]
    assert ew.proxy is not None
    h.loop.run(ew.proxy.stop())  # a deleted gateway stops accepting connections
    seen = Counter(_cluster_of(via_sidecar(sleep, URL)) for _ in range(10))
    assert seen == Counter({"aws-eks": 10})
    assert h.stat(sleep, CLUSTER + "upstream_cx_connect_fail") >= 1
    assert h.stat(sleep, CLUSTER + "upstream_rq_retry") >= 1
