"""Chaos Toolkit activities of the Consul server loss drill (DISCOVERY-FAILOVER).

Fault ``consul-server-loss``: the pod of the Consul server that ``/v1/status/leader``
names is deleted in the fault cluster (recorded first through
``meshproof.safety.Changes``: its manifest is kept, so ``restore`` — and
``meshproof recover`` — re-create it should its StatefulSet not). Meanwhile the
catalog is read again and again and compared with the Kubernetes endpoints of the
namespaces under test, until a live server other than the lost one leads and for
the hold time after. Consul is reached as the target says (``clusters[].consul``,
through the API server's ``services/proxy``). Activities, in the order an experiment
calls them: ``consul_has_leader`` (steady state), ``lose_consul_leader``,
``watch_consul_failover``, ``wait_for_consul_servers``, ``discovery_failover_verdict``.
"""

# No `from __future__ import annotations`: chaoslib reads the annotations at run time
# to give `chaos discover` portable argument types.

import time
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, DiscoveredActivities, Secrets
from consul import ConsulException
from requests import RequestException

from meshproof.chaos.consul_judge import (
    GUARANTEE,
    CatalogReading,
    catalog_problems,
    judge_discovery_failover,
)
from meshproof.chaos.discovery import typed_activities
from meshproof.chaos.state import Drill, drill_for
from meshproof.checks.discovery import all_kubernetes_endpoints, consul_sync_endpoints
from meshproof.clients.consul import consul_via_apiserver
from meshproof.errors import MeshproofError
from meshproof.target import ConsulSettings
from meshproof.waiting import eventually

__all__ = [
    "consul_has_leader",
    "discovery_failover_verdict",
    "load_exported_activities",
    "lose_consul_leader",
    "wait_for_consul_servers",
    "watch_consul_failover",
]

FAULT = "consul-server-loss"
PROBES = ("consul_has_leader", "watch_consul_failover", "discovery_failover_verdict")
"""The activities that are probes (the others are actions)."""
_UNANSWERED = (ConsulException, RequestException, ValueError, MeshproofError)
"""What a read of Consul raises while it has no leader or no server to answer."""


def _settings(drill: Drill, cluster: str) -> ConsulSettings:
    settings = drill.target.cluster(drill.cluster(cluster)).consul
    if settings is None:
        raise ActivityFailed(f"cluster {cluster} has no Consul in target {drill.target.name!r};"
                             " set clusters[].consul")
    return settings


def _consul(drill: Drill, cluster: str) -> Any:
    settings = _settings(drill, cluster)
    return consul_via_apiserver(drill.connections.api(cluster), namespace=settings.namespace,
                                service=settings.service, port=settings.port)


def _leader(drill: Drill, cluster: str) -> str:
    """``ip:port`` of the leader (``""``: none); raises one of ``_UNANSWERED``."""
    return str(_consul(drill, cluster).status.leader() or "")


def _server_pods(drill: Drill, cluster: str) -> list[dict[str, Any]]:
    namespace = _settings(drill, cluster).namespace
    listed = drill.connections.api(cluster).get(f"/api/v1/namespaces/{namespace}/pods")
    return list(listed.get("items") or [])


def _pod_at(pods: list[dict[str, Any]], leader: str) -> dict[str, Any] | None:
    """The live pod whose IP the leader address names."""
    ip = leader.rsplit(":", 1)[0]
    return next((p for p in pods if (p.get("status") or {}).get("podIP") == ip
                 and not p["metadata"].get("deletionTimestamp")), None)


def consul_has_leader(cluster: str, configuration: Configuration = None,
                      secrets: Secrets = None) -> bool:
    """Whether ``cluster``'s Consul names a leader (``/v1/status/leader`` not empty)."""
    drill = drill_for(configuration)
    try:
        return bool(_leader(drill, cluster))
    except _UNANSWERED:
        return False


def lose_consul_leader(cluster: str, configuration: Configuration = None,
                       secrets: Secrets = None) -> dict[str, Any]:
    """Fault ``consul-server-loss``: delete the pod of ``cluster``'s Consul leader (its
    StatefulSet re-creates it)."""
    drill = drill_for(configuration)
    changes = drill.allow(cluster, FAULT)
    namespace = _settings(drill, cluster).namespace
    try:
        leader = _leader(drill, cluster)
    except _UNANSWERED as exc:
        raise ActivityFailed(f"asking {cluster}'s Consul for its leader: {exc}") from exc
    if not leader:
        raise ActivityFailed(f"{cluster}'s Consul has no leader to lose")
    try:
        pod = _pod_at(_server_pods(drill, cluster), leader)
        if pod is None:
            raise ActivityFailed(f"no pod of {namespace} on {cluster} has the leader's "
                                 f"address {leader}")
        name = str(pod["metadata"]["name"])
        changes.delete(f"/api/v1/namespaces/{namespace}/pods/{name}")
    except MeshproofError as exc:
        raise ActivityFailed(f"deleting the Consul leader's pod on {cluster}: {exc}") from exc
    drill.mark("fault-start", "fault-start", f"Consul leader {name} ({leader}) deleted",
               cluster=cluster)
    result = {"cluster": cluster, "pod": name, "uid": pod["metadata"]["uid"], "leader": leader}
    drill.measurements["consul_loss"] = result
    return result


def _reading(drill: Drill, cluster: str, after_leader: bool) -> CatalogReading:
    at = time.time()
    try:
        synced = consul_sync_endpoints(_consul(drill, cluster))
    except _UNANSWERED:
        return CatalogReading(at=at, answered=False, after_leader=after_leader)
    kubernetes = all_kubernetes_endpoints(drill.connections.api(cluster),
                                          list(drill.target.namespaces))
    return CatalogReading(at=at, answered=True, after_leader=after_leader,
                          problems=tuple(catalog_problems(synced, kubernetes)))


def watch_consul_failover(cluster: str, after_s: float = 30.0,
                          configuration: Configuration = None,
                          secrets: Secrets = None) -> dict[str, Any]:
    """Read ``cluster``'s catalog and leader again and again from the loss until a live
    server other than the lost pod leads (at most the recover timeout), then ``after_s``
    seconds more; each catalog reading is compared with the Kubernetes endpoints of the
    namespaces under test."""
    drill = drill_for(configuration)
    lost = drill.measurements.get("consul_loss")
    if lost is None:
        raise ActivityFailed("no Consul leader was lost; call lose_consul_leader first")
    timeouts = drill.target.resolved_timeouts
    start = drill.moments["fault-start"]
    readings: list[CatalogReading] = []
    elected: float | None = None
    leader = ""
    deadline = time.monotonic() + timeouts.recover
    try:
        while True:
            if elected is None:
                try:
                    leader = _leader(drill, cluster)
                except _UNANSWERED:
                    leader = ""
                pod = _pod_at(_server_pods(drill, cluster), leader) if leader else None
                if pod is not None and pod["metadata"]["uid"] != lost["uid"]:
                    elected = drill.mark("leader-elected", "recovery",
                                         f"Consul leader {pod['metadata']['name']} ({leader}) "
                                         f"{time.time() - start:.1f} s after the loss",
                                         cluster=cluster)
                    deadline = time.monotonic() + after_s
            readings.append(_reading(drill, cluster, after_leader=elected is not None))
            if time.monotonic() >= deadline:
                break
            time.sleep(timeouts.poll_interval)
    except MeshproofError as exc:
        raise ActivityFailed(f"reading Kubernetes on {cluster}: {exc}") from exc
    wrong = sum(1 for r in readings if r.answered and not r.correct)
    answered = sum(1 for r in readings if r.answered)
    result = {"cluster": cluster, "leader": leader,
              "leader_s": None if elected is None else round(elected - start, 3),
              "leader_waited_s": round(time.time() - start, 3), "readings": len(readings),
              "answered": answered, "wrong": wrong}
    drill.note("verification", f"{answered} of {len(readings)} catalog readings answered, "
               f"{wrong} disagreeing with Kubernetes", cluster=cluster)
    drill.measurements["consul_failover"] = {**result, "catalog": readings}
    return result


def wait_for_consul_servers(cluster: str, configuration: Configuration = None,
                            secrets: Secrets = None) -> dict[str, Any]:
    """Wait (the pod ready timeout) until every Consul server StatefulSet of ``cluster`` has
    all its replicas Ready again; also the rollback of the fault, before ``restore``."""
    drill = drill_for(configuration)
    namespace = _settings(drill, cluster).namespace
    api = drill.connections.api(cluster)
    timeouts = drill.target.resolved_timeouts

    def ready() -> list[str]:
        sets = api.get(f"/apis/apps/v1/namespaces/{namespace}/statefulsets").get("items") or []
        for s in sets:
            wanted = int((s.get("spec") or {}).get("replicas", 1))
            got = int((s.get("status") or {}).get("readyReplicas") or 0)
            assert got >= wanted, f"statefulset {s['metadata']['name']}: {got}/{wanted} ready"
        return [s["metadata"]["name"] for s in sets]

    try:
        names = eventually(ready, timeout=timeouts.pod_ready, interval=timeouts.poll_interval,
                           what=f"the Consul servers of {cluster} Ready")
    except MeshproofError as exc:
        raise ActivityFailed(str(exc)) from exc
    return {"cluster": cluster, "statefulsets": names}


def discovery_failover_verdict(configuration: Configuration = None,
                               secrets: Secrets = None) -> dict[str, Any]:
    """DISCOVERY-FAILOVER's verdict: a new leader within the catalog's ``max_leader_s``,
    every catalog answer during and after the change agreeing with Kubernetes; fails
    unless it held."""
    drill = drill_for(configuration)
    watched = drill.measurements.get("consul_failover")
    if watched is None:
        raise ActivityFailed(f"{GUARANTEE}: the failover was not watched, nothing to judge")
    measured = {"leader_s": watched["leader_s"], "leader_waited_s": watched["leader_waited_s"],
                "readings": watched["catalog"]}
    judgement = judge_discovery_failover(measured, drill.thresholds(GUARANTEE))
    return drill.settle(GUARANTEE, judgement)


def load_exported_activities() -> list[DiscoveredActivities]:
    """This module's activities for ``chaos discover``, each typed action or probe."""
    return typed_activities(__name__, PROBES)
