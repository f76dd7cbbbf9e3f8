"""Configuration analysis over live objects, in the spirit of ``istioctl analyze``.

Each finding has a level (Error / Warning), a code, the object and a message.
Errors are what breaks traffic: a route to a host or subset that does not
exist, conflicting namespace-wide PeerAuthentications. Warnings are drift:
``consecutiveErrors`` (ignored by Istio since 2020), ``v1beta1`` objects.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from meshproof.clients.kube import ClusterApi, NotFoundError

__all__ = ["Finding", "analyze"]

Obj = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Finding:
    level: str
    code: str
    cluster: str
    object: str
    message: str

    def __str__(self) -> str:
        return f"{self.level} [{self.code}] ({self.object} on {self.cluster}) {self.message}"


def _items(api: ClusterApi, path: str) -> list[Obj]:
    try:
        return list(api.get(path).get("items") or [])
    except NotFoundError:
        return []


def _fqdn(host: str, namespace: str) -> str:
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace}.svc.cluster.local"
    if len(parts) == 2:
        return f"{host}.svc.cluster.local"
    return host


def analyze(apis: dict[str, ClusterApi], namespaces: list[str]) -> list[Finding]:
    """Findings for the Istio config of ``namespaces`` in every cluster."""
    services = {
        f"{s['metadata']['name']}.{s['metadata']['namespace']}.svc.cluster.local"
        for api in apis.values() for s in _items(api, "/api/v1/services")}
    findings: list[Finding] = []
    for cluster, api in apis.items():
        rules = _items(api, "/apis/networking.istio.io/v1/destinationrules")
        subsets: dict[str, set[str]] = {}
        for rule in rules:
            ns, spec = rule["metadata"]["namespace"], rule.get("spec") or {}
            host = _fqdn(str(spec.get("host", "")), ns)
            subsets.setdefault(host, set()).update(s["name"] for s in spec.get("subsets") or [])
            od = (spec.get("trafficPolicy") or {}).get("outlierDetection") or {}
            if "consecutiveErrors" in od:
                findings.append(Finding("Warning", "Deprecated", cluster,
                                        f"DestinationRule {ns}/{rule['metadata']['name']}",
                                        "outlierDetection.consecutiveErrors is ignored by Istio; "
                                        "use consecutive5xxErrors"))
        for vs in _items(api, "/apis/networking.istio.io/v1/virtualservices"):
            ns, name = vs["metadata"]["namespace"], vs["metadata"]["name"]
            if ns not in namespaces:
                continue
            for http in (vs.get("spec") or {}).get("http") or []:
                for route in http.get("route") or []:
                    dest = route.get("destination") or {}
                    host = _fqdn(str(dest.get("host", "")), ns)
                    if host not in services:
                        findings.append(Finding("Error", "ReferencedResourceNotFound", cluster,
                                                f"VirtualService {ns}/{name}",
                                                f"host {host} is not a service of the mesh"))
                    elif dest.get("subset") and dest["subset"] not in subsets.get(host, set()):
                        findings.append(Finding("Error", "ReferencedResourceNotFound", cluster,
                                                f"VirtualService {ns}/{name}",
                                                f"subset {dest['subset']} of {host} is not "
                                                "defined by a DestinationRule"))
        namespace_wide = Counter(
            pa["metadata"]["namespace"]
            for pa in _items(api, "/apis/security.istio.io/v1/peerauthentications")
            if not (pa.get("spec") or {}).get("selector"))
        for ns, count in namespace_wide.items():
            if count > 1:
                findings.append(Finding("Error", "ConflictingPeerAuthentication", cluster,
                                        f"namespace {ns}", f"{count} namespace-wide "
                                        "PeerAuthentications; only the oldest applies"))
    return findings
