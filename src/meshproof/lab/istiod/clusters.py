"""Outbound clusters: every service port of every cluster, with subsets and traffic policy.

Services with the same name and namespace in several clusters are one service
(Istio's namespace sameness). Endpoints in the proxy's own network are pod
addresses; a remote network's endpoints of a cluster become one endpoint, the
remote east-west gateway on 15443, weighted by how many they stand for, with
the SNI AUTO_PASSTHROUGH routes on (FACTS.md "Multi-cluster, multi-network").

Not-ready pods (listed in the EndpointSlice with ``ready: false``, not terminating) are
sent as ``UNHEALTHY`` endpoints when istiod sends unhealthy endpoints for the cluster: by
default since Istio 1.31 unless the DestinationRule's ``outlierDetection.minHealthPercent``
is above 0 (istio/istio ``pilot/pkg/xds/endpoints/endpoint_builder.go``
``supportsUnhealthyEndpoints`` and ``filterIstioEndpoint``,
``pilot/pkg/serviceregistry/kube/controller/endpointslice.go`` ``endpointHealthStatus``).
Terminating pods are never sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from meshproof.lab.istiod.view import (
    ClusterView,
    MeshView,
    Obj,
    duration_seconds,
    fqdn,
    labels_of,
    name_of,
    namespace_of,
    selector_matches_labels,
)
from meshproof.lab.mesh.config import (
    MAX_U32,
    ConnectionPool,
    Endpoint,
    OutboundCluster,
    OutlierDetection,
    sni_for,
)

__all__ = [
    "ServicePort",
    "destination_rule_for",
    "outbound_clusters",
    "resolve_host",
    "service_ports",
]

EASTWEST_PORT = 15443


@dataclass(frozen=True, slots=True)
class ServicePort:
    """One port of a (possibly multi-cluster) service."""

    name: str
    namespace: str
    port: int
    port_name: str
    target: int | str

    @property
    def host(self) -> str:
        return fqdn(self.name, self.namespace)


def service_ports(view: MeshView) -> list[ServicePort]:
    seen: dict[tuple[str, str, int], ServicePort] = {}
    for cluster in view.clusters.values():
        for svc in cluster.services:
            spec = svc.get("spec") or {}
            if spec.get("type") == "ExternalName":
                continue
            for p in spec.get("ports") or []:
                key = (name_of(svc), namespace_of(svc), int(p["port"]))
                seen.setdefault(key, ServicePort(key[0], key[1], key[2], p.get("name", ""),
                                                 p.get("targetPort", p["port"])))
    return sorted(seen.values(), key=lambda s: (s.namespace, s.name, s.port))


def resolve_host(host: str, namespace: str) -> str:
    """A short host as Istio resolves it in the namespace of the resource naming it."""
    if host.endswith(".svc.cluster.local") or "*" in host:
        return host
    parts = host.split(".")
    if len(parts) == 1:
        return fqdn(host, namespace)
    if len(parts) == 2:
        return fqdn(parts[0], parts[1])
    if len(parts) == 3 and parts[2] == "svc":
        return fqdn(parts[0], parts[1])
    return host


def destination_rule_for(view: MeshView, host: str, client_namespace: str) -> Obj | None:
    """The DestinationRule for ``host``: the client's namespace first, then the host's."""
    rules = [(resolve_host(str((r.get("spec") or {}).get("host", "")), namespace_of(r)), r)
             for r in view.destination_rules]
    host_ns = host.split(".")[1] if host.count(".") >= 2 else ""
    for ns in (client_namespace, host_ns, view.mesh.root_namespace):
        for resolved, rule in rules:
            if resolved == host and namespace_of(rule) == ns:
                return rule
    return None


def _pool(policy: Obj) -> ConnectionPool:
    tcp = (policy.get("connectionPool") or {}).get("tcp") or {}
    http = (policy.get("connectionPool") or {}).get("http") or {}
    return ConnectionPool(
        max_connections=int(tcp.get("maxConnections", MAX_U32)),
        connect_timeout=duration_seconds(tcp.get("connectTimeout"), 10.0) or 10.0,
        http1_max_pending_requests=int(http.get("http1MaxPendingRequests", MAX_U32)),
        http2_max_requests=int(http.get("http2MaxRequests", MAX_U32)),
        max_requests_per_connection=int(http.get("maxRequestsPerConnection", 0)),
        max_retries=int(http.get("maxRetries", MAX_U32)),
        idle_timeout=duration_seconds(http.get("idleTimeout"), 3600.0) or 3600.0,
    )


def _outlier(policy: Obj) -> OutlierDetection | None:
    od = policy.get("outlierDetection")
    if od is None:
        return None
    # consecutiveErrors is deprecated and ignored by Istio: such a rule gets Envoy's
    # default of 5 consecutive 5xx (FACTS.md "Runbook drift").
    return OutlierDetection(
        consecutive_5xx_errors=int(od.get("consecutive5xxErrors", 5)),
        consecutive_gateway_errors=int(od.get("consecutiveGatewayErrors", 0)),
        interval=duration_seconds(od.get("interval"), 10.0) or 10.0,
        base_ejection_time=duration_seconds(od.get("baseEjectionTime"), 30.0) or 30.0,
        max_ejection_percent=int(od.get("maxEjectionPercent", 10)),
        min_health_percent=int(od.get("minHealthPercent", 0)),
    )


def _target_port(svc_port: ServicePort, pod: Obj) -> int | None:
    if isinstance(svc_port.target, int):
        return svc_port.target
    if str(svc_port.target).isdigit():
        return int(svc_port.target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for p in container.get("ports") or []:
            if p.get("name") == svc_port.target:
                return int(p["containerPort"])
    return None


def _listed(pod: Obj) -> bool:
    """In the service's EndpointSlice and not terminating: an IP, not finished, not deleted
    (Kubernetes ``ShouldPodBeInEndpoints``; terminating ones Istio drops)."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed") or not status.get("podIP"):
        return False
    return not (pod.get("metadata") or {}).get("deletionTimestamp")


def _ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    if status.get("phase") != "Running" or not status.get("podIP"):
        return False
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in status.get("conditions") or [])


def _backends(cluster: ClusterView, svc_port: ServicePort, *,
              unhealthy: bool = False) -> list[tuple[Obj, int]]:
    """Ready pods behind the service in ``cluster`` with the port they serve it on; with
    ``unhealthy``, the not-ready pods of its EndpointSlice too."""
    selector = None
    for svc in cluster.services:
        if name_of(svc) == svc_port.name and namespace_of(svc) == svc_port.namespace:
            selector = (svc.get("spec") or {}).get("selector")
    if not selector:
        return []
    out = []
    for pod in cluster.pods:
        if namespace_of(pod) == svc_port.namespace and selector_matches_labels(
                selector, labels_of(pod)) and (_ready(pod) or (unhealthy and _listed(pod))):
            port = _target_port(svc_port, pod)
            if port is not None:
                out.append((pod, port))
    return out


def _send_unhealthy(view: MeshView, outlier: OutlierDetection | None) -> bool:
    """istiod's ``supportsUnhealthyEndpoints`` for one cluster."""
    if view.features.send_unhealthy_endpoints:
        return True
    if not view.features.auto_send_unhealthy_endpoints:
        return False
    return outlier is None or outlier.min_health_percent <= 0


def _endpoints(view: MeshView, svc_port: ServicePort, subset_labels: dict[str, str],
               subset: str, network: str, *, unhealthy: bool = False) -> list[Endpoint]:
    endpoints: list[Endpoint] = []
    for cluster in view.clusters.values():
        local = cluster.network == network
        backends = [(p, port) for p, port in _backends(cluster, svc_port,
                                                       unhealthy=unhealthy and local)
                    if selector_matches_labels(subset_labels, labels_of(p))]
        if not backends:
            continue
        if local:
            for pod, port in backends:
                region, zone = cluster.locality((pod.get("spec") or {}).get("nodeName", ""))
                endpoints.append(Endpoint(
                    address=str(pod["status"]["podIP"]), port=port, cluster=cluster.name,
                    network=cluster.network, region=region, zone=zone,
                    labels=labels_of(pod), workload=_workload_of(pod),
                    namespace=namespace_of(pod),
                    health_status="HEALTHY" if _ready(pod) else "UNHEALTHY"))
            continue
        gateway = cluster.eastwest_address()
        if not gateway:
            continue  # no way into that network: its endpoints are unreachable from here
        region, zone = cluster.locality()
        endpoints.append(Endpoint(
            address=gateway, port=EASTWEST_PORT, cluster=cluster.name, network=cluster.network,
            region=region, zone=zone, weight=len(backends),
            sni=sni_for(svc_port.port, svc_port.host, subset)))
    return endpoints


def _workload_of(pod: Obj) -> str:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("kind") == "ReplicaSet" and "-" in str(ref.get("name", "")):
            return str(ref["name"]).rsplit("-", 1)[0]
        if ref.get("kind") in ("StatefulSet", "DaemonSet", "Job"):
            return str(ref.get("name", ""))
    return name_of(pod)


def _service_accounts(view: MeshView, svc_port: ServicePort) -> list[str]:
    """The SPIFFE ids the service's endpoints run as: the SANs a client accepts."""
    accounts = {
        f"spiffe://{view.mesh.trust_domain}/ns/{namespace_of(p)}/sa/"
        f"{(p.get('spec') or {}).get('serviceAccountName') or 'default'}"
        for c in view.clusters.values() for p, _ in _backends(c, svc_port)}
    return sorted(accounts)


def _locality_lb(policy: Obj) -> bool:
    setting = (policy.get("loadBalancer") or {}).get("localityLbSetting") or {}
    return bool(setting.get("enabled", True))


def _in_mesh(view: MeshView, svc_port: ServicePort) -> bool:
    return any(labels_of(p).get("security.istio.io/tlsMode") == "istio"
               for c in view.clusters.values() for p, _ in _backends(c, svc_port))


def outbound_clusters(view: MeshView, client_namespace: str, network: str,
                      *, local_only: bool = False) -> list[OutboundCluster]:
    """Every service port's cluster, plus one per DestinationRule subset.

    ``local_only`` (the east-west gateway) keeps only this cluster's own endpoints.
    """
    out: list[OutboundCluster] = []
    scope = MeshView(local=view.local, clusters={view.local: view.local_cluster},
                     mesh=view.mesh) if local_only else view
    for sp in service_ports(view):
        rule = destination_rule_for(view, sp.host, client_namespace)
        policy = ((rule or {}).get("spec") or {}).get("trafficPolicy") or {}
        tls_mode = "ISTIO_MUTUAL" if _in_mesh(view, sp) else "DISABLE"
        if (policy.get("tls") or {}).get("mode") == "DISABLE":
            tls_mode = "DISABLE"
        variants = [("", {}, policy)] + [
            (s["name"], dict(s.get("labels") or {}), {**policy, **(s.get("trafficPolicy") or {})})
            for s in ((rule or {}).get("spec") or {}).get("subsets") or []
        ]
        for subset, labels, effective in variants:
            outlier = _outlier(effective)
            out.append(OutboundCluster(
                service=sp.host, port=sp.port, subset=subset,
                endpoints=_endpoints(scope, sp, labels, subset, network,
                                     unhealthy=_send_unhealthy(view, outlier)),
                connection_pool=_pool(effective), outlier_detection=outlier,
                locality_lb=_locality_lb(effective),
                tls_mode=tls_mode,  # type: ignore[arg-type]
                subject_alt_names=_service_accounts(view, sp) if tls_mode == "ISTIO_MUTUAL"
                else [],
            ))
    return out
