"""Envoy's statistics as Istio exposes them, read through the Kubernetes API.

Two ways in, both real-cluster safe: the Prometheus form on port 15090
(``/stats/prometheus``) through ``pods/proxy``, and the admin text form through
``kubectl exec ... -c istio-proxy -- pilot-agent request GET <path>`` (the admin
port 15000 is bound to the pod's loopback only).
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from meshproof.clients.kube import ClusterApi
from meshproof.errors import MeshproofError
from meshproof.proxypod import PROXY_CONTAINER

__all__ = [
    "PromSample",
    "HostStatus",
    "parse_exposition",
    "parse_text_stats",
    "cluster_stat",
    "parse_clusters",
    "prometheus_stats",
    "admin_get",
]


@dataclass(frozen=True, slots=True)
class PromSample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class HostStatus:
    """One upstream host of an Envoy cluster as ``/clusters`` lists it."""

    cluster: str
    address: str
    health_flags: str
    stats: dict[str, str]

    @property
    def healthy(self) -> bool:
        return self.health_flags == "healthy"


def parse_exposition(text: str) -> list[PromSample]:
    """Samples of a Prometheus text exposition."""
    try:
        return [
            PromSample(s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]
    except ValueError as exc:
        raise MeshproofError(f"not a Prometheus exposition: {exc}") from exc


def parse_text_stats(text: str) -> dict[str, str]:
    """Envoy's ``/stats`` text form: ``name: value`` per line (histograms kept as text)."""
    stats: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(": ")
        if sep:
            stats[name.strip()] = value.strip()
    return stats


def cluster_stat(stats: dict[str, str], cluster: str, stat: str) -> int | None:
    """``cluster.<name>.<stat>``, with or without the ``;`` Istio ≥ 1.23 puts after the name."""
    for key in (f"cluster.{cluster};.{stat}", f"cluster.{cluster}.{stat}"):
        if key in stats:
            return int(float(stats[key]))
    return None


def parse_clusters(text: str) -> list[HostStatus]:
    """Envoy's ``/clusters`` text: ``<cluster>::<ip:port>::<stat>::<value>`` lines."""
    hosts: dict[tuple[str, str], dict[str, str]] = {}
    for line in text.splitlines():
        parts = line.split("::")
        if len(parts) != 4 or ":" not in parts[1]:
            continue
        cluster, address, stat, value = parts
        hosts.setdefault((cluster, address), {})[stat] = value
    return [
        HostStatus(cluster, address, stats.get("health_flags", "healthy"), stats)
        for (cluster, address), stats in hosts.items()
    ]


def prometheus_stats(api: ClusterApi, namespace: str, pod: str) -> list[PromSample]:
    """The proxy's Envoy metrics from port 15090."""
    return parse_exposition(
        api.proxy("pods", namespace, pod, 15090, "stats/prometheus").decode()
    )


def admin_get(api: ClusterApi, namespace: str, pod: str, path: str) -> str:
    """``pilot-agent request GET <path>`` in the pod's istio-proxy container."""
    result = api.exec(namespace, pod, ["pilot-agent", "request", "GET", path],
                      container=PROXY_CONTAINER)
    if result.code != 0:
        raise MeshproofError(f"exec pilot-agent request GET {path} in {namespace}/{pod} on "
                             f"{api.cluster}: exit code {result.code}: "
                             f"{result.stderr.strip()[:200]}")
    return result.stdout
