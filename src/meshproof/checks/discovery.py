"""DISCOVERY: Kubernetes, Consul and the sidecars agree on every service's endpoints.

Per cluster and service under test: the ready addresses of the Kubernetes
Endpoints; the passing instances Consul's catalog sync registered
(``<service>-<namespace>``, consul-k8s naming, one datacenter per cluster);
and the hosts of the outbound cluster an in-mesh sidecar holds — this
cluster's pods by address, every other cluster that serves the service as its
east-west gateway on 15443 (FACTS.md), without the not-ready pods Istio also sends
(flagged ``/failed_eds_health``). Consul instances are read at their default port
(``Ports``, consul-k8s ≥ 1.9) or ``Port``. Endpoints move, so the three are
compared until they agree or ``discovery_convergence`` runs out.

A reading costs a number of calls that grows with pages, not services: each
cluster's Services and Endpoints are listed ``LIST_PAGE`` at a time, and Consul
is read in two calls (the sync node's services and its checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshproof.clients.consul import consul_via_apiserver, instance_port
from meshproof.clients.envoy import HostStatus, admin_get, parse_clusters
from meshproof.clients.kube import ClusterApi
from meshproof.errors import MeshproofError
from meshproof.sli.verdict import Judgement, Verdict
from meshproof.target import ClusterSettings

__all__ = ["LIST_PAGE", "NOT_RESOLVED_FLAGS", "SYNC_NODE", "ServiceView",
           "all_kubernetes_endpoints", "kubernetes_endpoints", "consul_endpoints",
           "consul_sync_endpoints", "resolved", "sidecar_endpoints", "eastwest_address",
           "compare", "observe", "judge_discovery"]

EASTWEST_PORT = 15443
LIST_PAGE = 500
"""Objects per list request (``limit``); the lists continue with ``continue`` tokens."""
SYNC_NODE = "k8s-sync"
"""The Consul node consul-k8s catalog sync registers Kubernetes services on (its default)."""
NOT_RESOLVED_FLAGS = frozenset({"failed_eds_health", "eds_status_draining",
                                "pending_dynamic_removal"})
"""Envoy ``health_flags`` that say the control plane does not offer the host as a ready
endpoint: EDS sent it ``UNHEALTHY`` (a not-ready pod; Istio ≥ 1.31 sends those by default,
``PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS``) or ``DRAINING``, or EDS no longer lists it. Flags
Envoy sets from its own view of traffic (outlier ejection, active health checks) leave the
host resolved: discovery still offers it."""


@dataclass(slots=True)
class ServiceView:
    name: str
    namespace: str
    port: int
    kubernetes: set[str] = field(default_factory=set)
    consul: set[str] | None = None
    sidecar_local: set[str] = field(default_factory=set)
    sidecar_remote: set[str] = field(default_factory=set)
    expected_remote: set[str] = field(default_factory=set)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}:{self.port}"


def _services(api: ClusterApi, namespaces: list[str]) -> list[tuple[str, str, int]]:
    out = []
    for ns in namespaces:
        for svc in api.list_items(f"/api/v1/namespaces/{ns}/services", limit=LIST_PAGE):
            spec = svc.get("spec") or {}
            if not spec.get("selector"):
                continue
            for port in spec.get("ports") or []:
                out.append((svc["metadata"]["name"], ns, int(port["port"])))
    return out


def _ready(endpoints: dict[str, Any]) -> set[str]:
    out = set()
    for subset in endpoints.get("subsets") or []:
        for address in subset.get("addresses") or []:
            for port in subset.get("ports") or []:
                out.add(f"{address['ip']}:{port['port']}")
    return out


def kubernetes_endpoints(api: ClusterApi, name: str, namespace: str) -> set[str]:
    """``ip:port`` of the ready addresses of the service's Endpoints."""
    return _ready(api.get(f"/api/v1/namespaces/{namespace}/endpoints/{name}"))


def all_kubernetes_endpoints(api: ClusterApi,
                             namespaces: list[str]) -> dict[tuple[str, str], set[str]]:
    """(namespace, service) → ``ip:port`` of its ready addresses, for every Endpoints of
    ``namespaces``, listed ``LIST_PAGE`` at a time."""
    out: dict[tuple[str, str], set[str]] = {}
    for ns in namespaces:
        for endpoints in api.list_items(f"/api/v1/namespaces/{ns}/endpoints", limit=LIST_PAGE):
            out[(ns, endpoints["metadata"]["name"])] = _ready(endpoints)
    return out


def _serving_elsewhere(api: ClusterApi, namespaces: list[str]) -> dict[tuple[str, str], set[str]]:
    try:
        return all_kubernetes_endpoints(api, namespaces)
    except MeshproofError:  # a cluster that cannot be read serves nothing we can count on
        return {}


def consul_endpoints(client: Any, name: str, namespace: str) -> set[str] | None:
    """Passing instances of ``<name>-<namespace>``; None when Consul does not know it."""
    _, entries = client.health.service(f"{name}-{namespace}", passing=True)
    if not entries:
        _, known = client.catalog.services()
        if f"{name}-{namespace}" not in known:
            return None
    return {f"{e['Service']['Address']}:{instance_port(e['Service'])}" for e in entries}


def consul_sync_endpoints(client: Any, node: str = SYNC_NODE) -> dict[str, set[str]] | None:
    """Consul service name → passing ``address:port`` of every instance on the catalog sync's
    ``node``, in two reads; None when Consul has no such node.

    ``/v1/catalog/node/<node>`` maps the node's service IDs to their instances and
    ``/v1/health/node/<node>`` lists the node's checks
    (https://developer.hashicorp.com/consul/api-docs/catalog#retrieve-map-of-services-for-a-node,
    https://developer.hashicorp.com/consul/api-docs/health#list-checks-for-node). As
    ``/v1/health/service/<s>?passing`` does, an instance passes when its own checks and the
    node's (``ServiceID`` empty) all do.
    """
    _, found = client.catalog.node(node)
    if not found:
        return None
    _, checks = client.health.node(node)
    failing = {c.get("ServiceID") or "" for c in checks or [] if c.get("Status") != "passing"}
    out: dict[str, set[str]] = {}
    for service_id, svc in (found.get("Services") or {}).items():
        hosts = out.setdefault(svc["Service"], set())
        if "" not in failing and (svc.get("ID") or service_id) not in failing:
            hosts.add(f"{svc['Address']}:{instance_port(svc)}")
    return out


def resolved(host: HostStatus) -> bool:
    """Does the sidecar hold ``host`` as an endpoint discovery resolved (not one flagged
    ``NOT_RESOLVED_FLAGS``)? ``health_flags`` is ``healthy`` or ``/flag/flag...``
    (Envoy ``HostUtility::healthFlagsToString``)."""
    return not NOT_RESOLVED_FLAGS & set(host.health_flags.split("/"))


def sidecar_endpoints(api: ClusterApi, namespace: str, pod: str) -> dict[str, set[str]]:
    """Outbound cluster name → resolved hosts, from the sidecar's ``/clusters``."""
    out: dict[str, set[str]] = {}
    for host in parse_clusters(admin_get(api, namespace, pod, "clusters")):
        if host.cluster.startswith("outbound|"):
            hosts = out.setdefault(host.cluster, set())
            if resolved(host):
                hosts.add(host.address)
    return out


def eastwest_address(api: ClusterApi) -> str:
    """Where other networks reach this cluster's east-west gateway (LoadBalancer address)."""
    svc = api.get("/api/v1/namespaces/istio-system/services/istio-eastwestgateway")
    for ingress in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
        if ingress.get("ip") or ingress.get("hostname"):
            return str(ingress.get("ip") or ingress.get("hostname"))
    return ""


def compare(view: ServiceView) -> list[str]:
    """What disagrees, in words; empty when all three sources agree."""
    problems = []
    if view.consul is not None and view.consul != view.kubernetes:
        problems.append(f"Consul {sorted(view.consul)} ≠ Kubernetes {sorted(view.kubernetes)}")
    if view.sidecar_local != view.kubernetes:
        problems.append(f"sidecar {sorted(view.sidecar_local)} ≠ Kubernetes "
                        f"{sorted(view.kubernetes)}")
    if view.sidecar_remote != view.expected_remote:
        problems.append(f"sidecar's remote endpoints {sorted(view.sidecar_remote)} ≠ the other "
                        f"clusters' gateways {sorted(view.expected_remote)}")
    return problems


def observe(apis: dict[str, ClusterApi], settings: ClusterSettings, namespaces: list[str], *,
            probe_namespace: str, probe_pod: str) -> list[ServiceView]:
    """One reading of all three sources for every service under test in one cluster."""
    api = apis[settings.name]
    consul = None
    if settings.consul is not None:
        consul = consul_via_apiserver(api, namespace=settings.consul.namespace,
                                      service=settings.consul.service, port=settings.consul.port)
    held = sidecar_endpoints(api, probe_namespace, probe_pod)
    gateways = {name: eastwest_address(other) for name, other in apis.items()
                if name != settings.name}
    synced = consul_sync_endpoints(consul) if consul is not None else None
    local = all_kubernetes_endpoints(api, namespaces)
    elsewhere = {name: _serving_elsewhere(apis[name], namespaces) for name in gateways}
    views = []
    for name, ns, port in _services(api, namespaces):
        view = ServiceView(name, ns, port, kubernetes=local.get((ns, name), set()))
        if synced is not None:
            view.consul = synced.get(f"{name}-{ns}")
        elif consul is not None:  # a sync node of another name: one service at a time
            view.consul = consul_endpoints(consul, name, ns)
        hosts = held.get(f"outbound|{port}||{name}.{ns}.svc.cluster.local", set())
        view.sidecar_remote = {h for h in hosts if h.endswith(f":{EASTWEST_PORT}")}
        view.sidecar_local = hosts - view.sidecar_remote
        for other, address in gateways.items():
            if address and elsewhere[other].get((ns, name)):
                view.expected_remote.add(f"{address}:{EASTWEST_PORT}")
        views.append(view)
    return views


def judge_discovery(views: list[ServiceView], *, cluster: str, required: float,
                    consul_configured: bool) -> Judgement:
    problems = {v.key: compare(v) for v in views if compare(v)}
    unknown = [v.key for v in views if consul_configured and v.consul is None]
    evidence: dict[str, Any] = {"services": len(views), "problems": problems,
                                "unknown_to_consul": unknown}
    if not views:
        return Judgement(Verdict.NOT_MEASURABLE, f"{cluster}: no service under test", evidence)
    if not consul_configured:
        return Judgement(Verdict.NOT_MEASURABLE, f"{cluster}: the target names no Consul for "
                         "this cluster; Kubernetes and the sidecars were compared only",
                         evidence)
    bad = len(set(problems) | set(unknown))
    share = (len(views) - bad) / len(views)
    evidence["ratio"] = share
    if share < required:
        first = next(iter(problems.items()), (unknown[0] if unknown else "", ["unknown to Consul"]))
        return Judgement(Verdict.VIOLATED, f"{cluster}: {bad} of {len(views)} services resolve "
                         f"inconsistently — {first[0]}: {'; '.join(first[1])}", evidence)
    return Judgement(Verdict.HELD, f"{cluster}: all {len(views)} services agree across "
                     "Kubernetes, Consul and the sidecars", evidence)
