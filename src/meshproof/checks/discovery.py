"""DISCOVERY: Kubernetes, Consul and the sidecars agree on every service's endpoints.

Per cluster and service under test: the ready addresses of the Kubernetes
Endpoints; the passing instances Consul's catalog sync registered
(``<service>-<namespace>``, consul-k8s naming, one datacenter per cluster);
and the hosts of the outbound cluster an in-mesh sidecar holds — this
cluster's pods by address, every other cluster that serves the service as its
east-west gateway on 15443 (FACTS.md). Endpoints move, so the three are
compared until they agree or ``discovery_convergence`` runs out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meshproof.clients.consul import consul_via_apiserver
from meshproof.clients.envoy import admin_get, parse_clusters
from meshproof.clients.kube import ClusterApi
from meshproof.sli.verdict import Judgement, Verdict
from meshproof.target import ClusterSettings

__all__ = ["ServiceView", "kubernetes_endpoints", "consul_endpoints", "sidecar_endpoints",
           "eastwest_address", "compare", "judge_discovery"]

EASTWEST_PORT = 15443


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
        for svc in api.get(f"/api/v1/namespaces/{ns}/services").get("items") or []:
            spec = svc.get("spec") or {}
            if not spec.get("selector"):
                continue
            for port in spec.get("ports") or []:
                out.append((svc["metadata"]["name"], ns, int(port["port"])))
    return out


def kubernetes_endpoints(api: ClusterApi, name: str, namespace: str) -> set[str]:
    """``ip:port`` of the ready addresses of the service's Endpoints."""
    endpoints = api.get(f"/api/v1/namespaces/{namespace}/endpoints/{name}")
    out = set()
    for subset in endpoints.get("subsets") or []:
        for address in subset.get("addresses") or []:
            for port in subset.get("ports") or []:
                out.add(f"{address['ip']}:{port['port']}")
    return out


def consul_endpoints(client: Any, name: str, namespace: str) -> set[str] | None:
    """Passing instances of ``<name>-<namespace>``; None when Consul does not know it."""
    _, entries = client.health.service(f"{name}-{namespace}", passing=True)
    if not entries:
        _, known = client.catalog.services()
        if f"{name}-{namespace}" not in known:
            return None
    return {f"{e['Service']['Address']}:{e['Service']['Port']}" for e in entries}


def sidecar_endpoints(api: ClusterApi, namespace: str, pod: str) -> dict[str, set[str]]:
    """Outbound cluster name → hosts, from the sidecar's ``/clusters``."""
    out: dict[str, set[str]] = {}
    for host in parse_clusters(admin_get(api, namespace, pod, "clusters")):
        if host.cluster.startswith("outbound|"):
            out.setdefault(host.cluster, set()).add(host.address)
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
    views = []
    for name, ns, port in _services(api, namespaces):
        view = ServiceView(name, ns, port, kubernetes=kubernetes_endpoints(api, name, ns))
        if consul is not None:
            view.consul = consul_endpoints(consul, name, ns)
        hosts = held.get(f"outbound|{port}||{name}.{ns}.svc.cluster.local", set())
        view.sidecar_remote = {h for h in hosts if h.endswith(f":{EASTWEST_PORT}")}
        view.sidecar_local = hosts - view.sidecar_remote
        for other, address in gateways.items():
            if address and _has_ready(apis[other], name, ns):
                view.expected_remote.add(f"{address}:{EASTWEST_PORT}")
        views.append(view)
    return views


def _has_ready(api: ClusterApi, name: str, namespace: str) -> bool:
    try:
        return bool(kubernetes_endpoints(api, name, namespace))
    except Exception:  # a service missing in that cluster serves nothing there
        return False


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
