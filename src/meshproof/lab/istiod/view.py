"""What istiod sees: the objects of every cluster it watches, as one snapshot.

Multi-primary: each istiod reads Istio configuration (VirtualService,
DestinationRule, PeerAuthentication, AuthorizationPolicy, Gateway) from its own
cluster, and services, endpoints, pods and nodes from every cluster it has a
remote secret for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ClusterView",
    "MeshSettings",
    "MeshView",
    "Obj",
    "PilotFeatures",
    "duration_seconds",
    "fqdn",
    "labels_of",
    "name_of",
    "namespace_of",
    "selector_matches_labels",
]

Obj = dict[str, Any]
CLUSTER_DOMAIN = "svc.cluster.local"


def name_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def namespace_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace", ""))


def labels_of(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def fqdn(name: str, namespace: str) -> str:
    return f"{name}.{namespace}.{CLUSTER_DOMAIN}"


def selector_matches_labels(selector: dict[str, str] | None, labels: dict[str, str]) -> bool:
    """A plain ``matchLabels``-style map (Service selector, Istio workload selector)."""
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def duration_seconds(value: Any, default: float | None = None) -> float | None:
    """A protobuf Duration as Istio's YAML writes it (``10s``, ``1.5s``, ``100ms``, ``1h``,
    ``1m``)."""
    if value is None or value == "":
        return default
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    for suffix, factor in (("ms", 0.001), ("us", 1e-6), ("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


@dataclass(slots=True)
class ClusterView:
    """Service discovery objects of one cluster."""

    name: str
    network: str
    services: list[Obj] = field(default_factory=list)
    endpoints: list[Obj] = field(default_factory=list)
    pods: list[Obj] = field(default_factory=list)
    nodes: list[Obj] = field(default_factory=list)
    secrets: list[Obj] = field(default_factory=list)
    """Only the local cluster's secrets are read (credentialName of gateways)."""

    def pod(self, namespace: str, name: str) -> Obj | None:
        return next((p for p in self.pods if namespace_of(p) == namespace and name_of(p) == name),
                    None)

    def pod_by_ip(self, ip: str) -> Obj | None:
        return next((p for p in self.pods if (p.get("status") or {}).get("podIP") == ip), None)

    def locality(self, node_name: str = "") -> tuple[str, str]:
        """(region, zone) of a node, from its topology labels."""
        for node in self.nodes:
            if not node_name or name_of(node) == node_name:
                labels = labels_of(node)
                return (labels.get("topology.kubernetes.io/region", ""),
                        labels.get("topology.kubernetes.io/zone", ""))
        return "", ""

    def eastwest_address(self) -> str:
        """The address remote networks reach this cluster's east-west gateway on.

        As istiod reads it: the gateway Service's LoadBalancer ingress, else its
        externalIPs; the lab, having no load balancer, falls back to the ClusterIP.
        """
        for svc in self.services:
            if name_of(svc) != "istio-eastwestgateway" or namespace_of(svc) != "istio-system":
                continue
            for ingress in ((svc.get("status") or {}).get("loadBalancer") or {}).get(
                    "ingress") or []:
                if ingress.get("ip"):
                    return str(ingress["ip"])
            spec = svc.get("spec") or {}
            if spec.get("externalIPs"):
                return str(spec["externalIPs"][0])
            if spec.get("clusterIP") and spec["clusterIP"] != "None":
                return str(spec["clusterIP"])
        return ""


@dataclass(slots=True)
class MeshSettings:
    """The parts of the ``istio`` ConfigMap's mesh config istiod acts on."""

    trust_domain: str = "cluster.local"
    trust_domain_aliases: list[str] = field(default_factory=list)
    """meshConfig.trustDomainAliases: other trust domains whose identities this mesh accepts."""
    mesh_id: str = "mesh1"
    root_namespace: str = "istio-system"
    default_config: Obj = field(default_factory=dict)
    """meshConfig.defaultConfig (proxyStatsMatcher ...)."""


def _env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """An istiod boolean setting as ``pkg/env`` reads it (Go's ``strconv.ParseBool``; a value
    that does not parse keeps the default)."""
    value = env.get(name)
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    return default


@dataclass(frozen=True, slots=True)
class PilotFeatures:
    """The istiod environment switches the lab acts on (istio/istio
    ``pilot/pkg/features/experimental.go``)."""

    send_unhealthy_endpoints: bool = False
    """``PILOT_SEND_UNHEALTHY_ENDPOINTS``: send not-ready endpoints for every service."""
    auto_send_unhealthy_endpoints: bool = True
    """``PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS`` (istio/istio PR #60690, Istio 1.31; the 1.25 to
    1.30 compatibility profiles set it false): send them unless the DestinationRule's
    ``outlierDetection.minHealthPercent`` is above 0."""

    @classmethod
    def from_env(cls, env: Mapping[str, str],
                 version: tuple[int, int] | None = None) -> PilotFeatures:
        """The switches from istiod's environment, with the defaults of its ``version``
        (an istiod before 1.31 did not send unhealthy endpoints)."""
        auto_default = version is None or version >= (1, 31)
        return cls(
            send_unhealthy_endpoints=_env_bool(env, "PILOT_SEND_UNHEALTHY_ENDPOINTS", False),
            auto_send_unhealthy_endpoints=_env_bool(
                env, "PILOT_AUTO_SEND_UNHEALTHY_ENDPOINTS", auto_default))


@dataclass(slots=True)
class MeshView:
    """One istiod's snapshot: its own cluster's Istio config, every cluster's services."""

    local: str
    clusters: dict[str, ClusterView]
    mesh: MeshSettings = field(default_factory=MeshSettings)
    features: PilotFeatures = field(default_factory=PilotFeatures)
    virtual_services: list[Obj] = field(default_factory=list)
    destination_rules: list[Obj] = field(default_factory=list)
    peer_authentications: list[Obj] = field(default_factory=list)
    authorization_policies: list[Obj] = field(default_factory=list)
    gateways: list[Obj] = field(default_factory=list)

    @property
    def local_cluster(self) -> ClusterView:
        return self.clusters[self.local]
