"""istiod's translation of Kubernetes and Istio objects into proxy config (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from meshproof.lab.istiod.policy import mtls_mode_for_port
from meshproof.lab.istiod.translate import APP_PORT_OFFSET, proxy_config_for
from meshproof.lab.istiod.view import ClusterView, MeshView, PilotFeatures

HOST = "helloworld.sample.svc.cluster.local"


def meta(name: str, ns: str = "", **labels: str) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, "labels": labels}
    if ns:
        m["namespace"] = ns
    return m


def pod(name: str, ip: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {**meta(name, "sample", **labels),
                     "ownerReferences": [{"kind": "ReplicaSet", "name": f"{name}-5d4f"}]},
        "spec": {"nodeName": "n", "serviceAccountName": "helloworld",
                 "containers": [{"name": "app", "ports": [{"containerPort": 5000}]}]},
        "status": {"phase": "Running", "podIP": ip,
                   "conditions": [{"type": "Ready", "status": "True"}]},
    }


def service(name: str = "helloworld") -> dict[str, Any]:
    return {"metadata": meta(name, "sample"),
            "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 5000}],
                     "clusterIP": "127.11.0.9"}}


def eastwest(ip: str) -> dict[str, Any]:
    return {"metadata": meta("istio-eastwestgateway", "istio-system"),
            "spec": {"type": "LoadBalancer", "clusterIP": "127.12.0.2",
                     "ports": [{"name": "tls", "port": 15443}]},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}


def node(region: str) -> dict[str, Any]:
    return {"metadata": meta("n", **{"topology.kubernetes.io/region": region,
                                     "topology.kubernetes.io/zone": region + "a"})}


def two_clusters(**config: Any) -> MeshView:
    east = ClusterView("aws-eks", "network1", services=[service()], nodes=[node("us-east-1")],
                       pods=[pod("helloworld-v1", "127.1.0.5", app="helloworld", version="v1",
                                 **{"security.istio.io/tlsMode": "istio"}),
                             pod("curl", "127.1.0.6", app="curl")])
    west = ClusterView("gcp-gke", "network2", services=[service(), eastwest("127.12.0.200")],
                       nodes=[node("us-central1")],
                       pods=[pod("helloworld-v2", "127.2.0.5", app="helloworld", version="v2",
                                 **{"security.istio.io/tlsMode": "istio"})])
    return MeshView(local="aws-eks", clusters={"aws-eks": east, "gcp-gke": west}, **config)


def test_remote_network_endpoints_go_through_the_remote_eastwest_gateway() -> None:
    view = two_clusters()
    config = proxy_config_for(view, view.local_cluster.pods[1])
    cluster = config.cluster(f"outbound|5000||{HOST}")
    assert cluster is not None
    by_cluster = {e.cluster: e for e in cluster.endpoints}
    assert (by_cluster["aws-eks"].address, by_cluster["aws-eks"].port) == ("127.1.0.5", 5000)
    assert by_cluster["aws-eks"].region == "us-east-1"
    remote = by_cluster["gcp-gke"]
    assert (remote.address, remote.port) == ("127.12.0.200", 15443)
    assert remote.sni == f"outbound_.5000_._.{HOST}"
    assert cluster.tls_mode == "ISTIO_MUTUAL"
    assert config.identity.spiffe == "spiffe://cluster.local/ns/sample/sa/helloworld"
    assert config.identity.workload == "curl"


def test_subsets_traffic_policy_and_the_ignored_consecutive_errors() -> None:
    rule = {"metadata": meta("helloworld", "sample"), "spec": {
        "host": "helloworld",
        "trafficPolicy": {"connectionPool": {"http": {"http1MaxPendingRequests": 1}},
                          "outlierDetection": {"consecutiveErrors": 1, "interval": "1s",
                                               "baseEjectionTime": "30s"}},
        "subsets": [{"name": "v1", "labels": {"version": "v1"}},
                    {"name": "v2", "labels": {"version": "v2"}}]}}
    view = two_clusters(destination_rules=[rule])
    config = proxy_config_for(view, view.local_cluster.pods[1])
    v1 = config.cluster(f"outbound|5000|v1|{HOST}")
    v2 = config.cluster(f"outbound|5000|v2|{HOST}")
    assert v1 is not None and v2 is not None
    assert [e.address for e in v1.endpoints] == ["127.1.0.5"]
    assert [e.sni for e in v2.endpoints] == [f"outbound_.5000_.v2_.{HOST}"]
    assert v1.connection_pool.http1_max_pending_requests == 1
    assert v1.outlier_detection is not None
    assert v1.outlier_detection.consecutive_5xx_errors == 5  # consecutiveErrors is ignored
    assert v1.outlier_detection.interval == 1.0


def test_weighted_and_header_routes_from_a_virtual_service() -> None:
    vs = {"metadata": meta("helloworld", "sample"), "spec": {"hosts": ["helloworld"], "http": [
        {"match": [{"headers": {"env": {"exact": "canary"}}}],
         "route": [{"destination": {"host": "helloworld", "subset": "v2"}}]},
        {"route": [{"destination": {"host": "helloworld", "subset": "v1"}, "weight": 90},
                   {"destination": {"host": "helloworld", "subset": "v2"}, "weight": 10}],
         "fault": {"abort": {"httpStatus": 503}}},
    ]}}
    view = two_clusters(virtual_services=[vs])
    config = proxy_config_for(view, view.local_cluster.pods[1])
    vhost = next(v for v in config.virtual_hosts if v.domains == [HOST])
    canary, split = vhost.routes
    assert canary.matches[0].headers[0].exact == "canary"
    assert [(d.subset, d.weight, d.port) for d in canary.destinations] == [("v2", 100, 5000)]
    assert [(d.subset, d.weight) for d in split.destinations] == [("v1", 90), ("v2", 10)]
    assert split.fault is not None and split.fault.abort_percentage is None


def test_peer_authentication_precedence() -> None:
    def pa(name: str, ns: str, mode: str, selector: dict[str, str] | None = None,
           port_mode: str = "") -> dict[str, Any]:
        spec: dict[str, Any] = {"mtls": {"mode": mode}}
        if selector:
            spec["selector"] = {"matchLabels": selector}
            if port_mode:
                spec["portLevelMtls"] = {"5000": {"mode": port_mode}}
        return {"metadata": meta(name, ns), "spec": spec}

    view = two_clusters()
    labels = {"app": "helloworld"}
    assert mtls_mode_for_port(view, "sample", labels, 5000) == "PERMISSIVE"
    view.peer_authentications = [pa("mesh", "istio-system", "STRICT")]
    assert mtls_mode_for_port(view, "sample", labels, 5000) == "STRICT"
    view.peer_authentications.append(pa("ns", "sample", "PERMISSIVE"))
    assert mtls_mode_for_port(view, "sample", labels, 5000) == "PERMISSIVE"
    view.peer_authentications.append(pa("wl", "sample", "UNSET", {"app": "helloworld"},
                                        port_mode="DISABLE"))
    assert mtls_mode_for_port(view, "sample", labels, 5000) == "DISABLE"
    assert mtls_mode_for_port(view, "sample", labels, 8080) == "PERMISSIVE"
    config = proxy_config_for(view, view.local_cluster.pods[0])
    assert [(p.port, p.app_port, p.mtls_mode) for p in config.inbound.ports] == [
        (5000, 5000 + APP_PORT_OFFSET, "DISABLE")]


def test_the_eastwest_gateway_only_knows_its_own_cluster() -> None:
    view = two_clusters()
    gw = pod("istio-eastwestgateway", "127.1.0.9", istio="eastwestgateway")
    config = proxy_config_for(view, gw)
    cluster = config.cluster(f"outbound|5000||{HOST}")
    assert config.mode == "eastwest"
    assert cluster is not None and [e.address for e in cluster.endpoints] == ["127.1.0.5"]


def _with_unready_pods(**config: Any) -> MeshView:
    view = two_clusters(**config)
    unready = pod("helloworld-v1-b", "127.1.0.7", app="helloworld", version="v1",
                  **{"security.istio.io/tlsMode": "istio"})
    unready["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    leaving = pod("helloworld-v1-c", "127.1.0.8", app="helloworld", version="v1",
                  **{"security.istio.io/tlsMode": "istio"})
    leaving["metadata"]["deletionTimestamp"] = "2026-08-01T00:00:00Z"
    leaving["status"]["conditions"] = [{"type": "Ready", "status": "False"}]
    view.local_cluster.pods += [unready, leaving]
    return view


def _local_health(view: MeshView, name: str = f"outbound|5000||{HOST}") -> dict[str, str]:
    cluster = proxy_config_for(view, view.local_cluster.pods[1]).cluster(name)
    assert cluster is not None
    return {e.address: e.health_status for e in cluster.endpoints if e.cluster == "aws-eks"}


def test_not_ready_pods_are_sent_unhealthy_and_terminating_ones_not_at_all() -> None:
    """Istio 1.31 sends not-ready endpoints by default (istio/istio
    ``pilot/pkg/features/experimental.go``: ``PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS`` true) as
    ``UNHEALTHY`` (``pilot/pkg/serviceregistry/kube/controller/endpointslice.go``
    ``endpointHealthStatus``; ``pilot/pkg/xds/endpoints/endpoint_builder.go``
    ``buildEnvoyLbEndpoint``) and never sends terminating ones (``filterIstioEndpoint``)."""
    assert _local_health(_with_unready_pods()) == {"127.1.0.5": "HEALTHY",
                                                   "127.1.0.7": "UNHEALTHY"}


def test_unhealthy_endpoints_are_kept_back_as_istio_decides() -> None:
    """``supportsUnhealthyEndpoints`` (istio/istio ``pilot/pkg/xds/endpoints/
    endpoint_builder.go``): not with a DestinationRule whose ``outlierDetection.minHealthPercent``
    is above 0, not with ``PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS=false`` (the 1.25 to 1.30
    compatibility profiles), always with ``PILOT_SEND_UNHEALTHY_ENDPOINTS=true``."""
    rule = {"metadata": meta("helloworld", "sample"), "spec": {
        "host": "helloworld", "trafficPolicy": {"outlierDetection": {"minHealthPercent": 50}},
        "subsets": [{"name": "v1", "labels": {"version": "v1"},
                     "trafficPolicy": {"outlierDetection": {"minHealthPercent": 0}}}]}}
    guarded = _with_unready_pods(destination_rules=[rule])
    assert _local_health(guarded) == {"127.1.0.5": "HEALTHY"}
    assert _local_health(guarded, f"outbound|5000|v1|{HOST}") == {"127.1.0.5": "HEALTHY",
                                                                  "127.1.0.7": "UNHEALTHY"}
    old = PilotFeatures.from_env({"PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS": "false"})
    assert _local_health(_with_unready_pods(features=old)) == {"127.1.0.5": "HEALTHY"}
    forced = PilotFeatures.from_env({"PILOT_SEND_UNHEALTHY_ENDPOINTS": "1",
                                     "PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS": "false"})
    assert _local_health(_with_unready_pods(destination_rules=[rule], features=forced)) == {
        "127.1.0.5": "HEALTHY", "127.1.0.7": "UNHEALTHY"}
    assert PilotFeatures.from_env({"PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS": "nope"}) == \
        PilotFeatures()


@pytest.mark.parametrize(("version", "env", "auto"), [
    ((1, 31), {}, True), ((1, 30), {}, False), ((1, 26), {}, False), (None, {}, True),
    ((1, 30), {"PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS": "true"}, True),
])
def test_unhealthy_endpoints_default_follows_istiods_release(
        version: tuple[int, int] | None, env: dict[str, str], auto: bool) -> None:
    """``PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS`` is new in 1.31 (istio/istio PR #60690; the 1.25
    to 1.30 compatibility profiles set it false), so an older istiod does not send them."""
    assert PilotFeatures.from_env(env, version).auto_send_unhealthy_endpoints is auto
