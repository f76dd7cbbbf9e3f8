"""The live connections to a target: each cluster's API and Prometheus, built from the target file."""

from __future__ import annotations

from dataclasses import dataclass, field

from meshproof.clients.kube import ClusterApi, connect
from meshproof.clients.prometheus import PromQL, connect_prometheus
from meshproof.errors import TargetUnreachable
from meshproof.target import Target
from meshproof.timeouts import DEFAULT_TIMEOUTS, Timeouts

__all__ = ["Connections", "open_connections", "preflight"]


@dataclass(slots=True)
class Connections:
    """Clients for every cluster of a target, in the target's order."""

    target: Target
    timeouts: Timeouts
    apis: dict[str, ClusterApi] = field(default_factory=dict)
    prometheus: dict[str, PromQL | None] = field(default_factory=dict)

    @property
    def clusters(self) -> list[str]:
        return list(self.apis)

    def api(self, cluster: str) -> ClusterApi:
        return self.apis[cluster]


def open_connections(target: Target, *, timeouts: Timeouts | None = None) -> Connections:
    """API and Prometheus clients for each cluster (nothing is contacted yet)."""
    timeouts = timeouts or DEFAULT_TIMEOUTS.with_overrides(dict(target.timeouts))
    conns = Connections(target=target, timeouts=timeouts)
    for cluster in target.clusters:
        conns.apis[cluster.name] = connect(
            cluster.name, context=cluster.context, kubeconfig=cluster.kubeconfig,
            timeout=timeouts.api_request)
        prom = cluster.prometheus
        conns.prometheus[cluster.name] = None if prom is None else connect_prometheus(
            cluster.name, prom.url, timeout=timeouts.api_request,
            bearer_token_file=prom.bearer_token_file, ca_file=prom.ca_file,
            insecure_skip_verify=prom.insecure_skip_verify)
    return conns


def preflight(connections: Connections) -> None:
    """Every cluster's API server answers; raises ``TargetUnreachable`` naming the first that
    does not (a run against a target it cannot reach is not a run)."""
    for cluster, api in connections.apis.items():
        try:
            api.get("/version")
        except TargetUnreachable as exc:
            raise TargetUnreachable(
                f"target {connections.target.name}: cluster {cluster} (context {api.context}) "
                f"is unreachable at {api.host}") from exc
