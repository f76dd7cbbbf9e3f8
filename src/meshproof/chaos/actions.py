"""Chaos Toolkit actions of meshproof: the mesh faults, their restore, probes and traffic.

Every fault is refused unless the target's blast radius (``destructive.allowed``)
lists it for the cluster, before anything is written; every write goes through
``meshproof.safety.Changes`` (labelled with the run id, its undo recorded in the
cluster first), so ``restore`` — and after a crash ``meshproof recover`` — takes
it back. Clusters are named as in the target file; the target comes from the
configuration key ``meshproof_target`` or ``$MESHPROOF_TARGET``.

Faults (the names a target allows): ``eastwest-gateway-loss``, ``istiod-outage``,
``http-fault``, ``circuit-breaker-trip``.
"""

# No `from __future__ import annotations`: chaoslib reads the annotations at run time
# to give `chaos discover` portable argument types.

import copy
import datetime as dt
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from meshproof.chaos.state import Drill, drill_for
from meshproof.chaos.traffic import TrafficRecorder
from meshproof.errors import MeshproofError
from meshproof.waiting import eventually

__all__ = [
    "add_http_fault",
    "deploy_probe_agents",
    "lose_east_west_gateway",
    "remove_probe_agents",
    "restart_istiod",
    "restore",
    "start_traffic",
    "stop_istiod",
    "stop_traffic",
]

EASTWEST = ("istio-system", "istio-eastwestgateway")
ISTIOD = ("istio-system", "istiod")
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def _failed(what: str, exc: MeshproofError) -> ActivityFailed:
    return ActivityFailed(f"{what}: {exc}")


def deploy_probe_agents(configuration: Configuration = None,
                        secrets: Secrets = None) -> dict[str, Any]:
    """Deploy the run's in-mesh probe agents into every cluster of the target (namespace
    ``meshproof-probe-<run id>``, labelled with the run id) and wait until they are Ready."""
    drill = drill_for(configuration)
    try:
        fleet = drill.probes()
    except MeshproofError as exc:
        raise _failed("deploying the probe agents", exc) from exc
    return {"namespace": fleet.namespace, "clusters": sorted(fleet.deployed),
            "run_id": drill.run_id}


def remove_probe_agents(configuration: Configuration = None,
                        secrets: Secrets = None) -> dict[str, Any]:
    """Stop every traffic recorder and delete the run's probe namespaces (idempotent)."""
    drill = drill_for(configuration)
    namespace = drill.fleet.namespace if drill.fleet is not None else None
    drill.close()
    return {"removed": namespace}


def _service_pods(drill: Drill, namespace: str, app: str) -> dict[str, str]:
    pods: dict[str, str] = {}
    for cluster, api in drill.connections.apis.items():
        listed = api.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=f"app={app}")
        for pod in listed.get("items") or []:
            pods[str(pod["metadata"]["name"])] = cluster
    return pods


def start_traffic(name: str, from_cluster: str, service: str, namespace: str, port: int,
                  path: str = "/", max_s: float = 900.0,
                  configuration: Configuration = None,
                  secrets: Secrets = None) -> dict[str, Any]:
    """Start requests from ``from_cluster``'s in-mesh probe to
    ``http://<service>.<namespace>:<port><path>`` in the background (recorder ``name``),
    until ``stop_traffic`` or ``max_s`` seconds; each answer is timed and attributed to
    the cluster of the pod it names."""
    drill = drill_for(configuration)
    cluster = drill.cluster(from_cluster)
    if name in drill.recorders:
        drill.recorders.pop(name).stop()
    try:
        fleet = drill.probes()
        pods = _service_pods(drill, namespace, service)
    except MeshproofError as exc:
        raise _failed(f"starting traffic {name} from {cluster}", exc) from exc
    url = f"http://{service}.{namespace}:{port}{path}"
    recorder = TrafficRecorder(fleet, cluster, url, pods=pods, max_s=max_s,
                               timeout=drill.target.resolved_timeouts.api_request)
    drill.recorders[name] = recorder
    recorder.start()
    drill.note("load", f"traffic {name}: {url} from {cluster}", cluster=cluster)
    return {"url": url, "from": cluster, "pods": len(pods)}


def stop_traffic(name: str, configuration: Configuration = None,
                 secrets: Secrets = None) -> dict[str, Any]:
    """Stop recorder ``name``; its totals (requests, failures, rate)."""
    drill = drill_for(configuration)
    recorder = drill.recorders.get(name)
    if recorder is None:
        return {"stopped": None}
    recorder.stop()
    summary = recorder.summary()
    drill.measurements[f"traffic:{name}"] = summary
    return summary


def lose_east_west_gateway(cluster: str, configuration: Configuration = None,
                           secrets: Secrets = None) -> dict[str, Any]:
    """Fault ``eastwest-gateway-loss``: scale ``cluster``'s east-west gateway to zero, so
    the other clusters lose their way to its services."""
    drill = drill_for(configuration)
    changes = drill.allow(cluster, "eastwest-gateway-loss")
    try:
        previous = changes.scale(*EASTWEST, 0)
    except MeshproofError as exc:
        raise _failed(f"scaling the east-west gateway of {cluster} to 0", exc) from exc
    drill.mark("fault-start", "fault-start",
               f"east-west gateway of {cluster} scaled {previous} → 0", cluster=cluster)
    return {"cluster": cluster, "previous_replicas": previous}


def stop_istiod(cluster: str, configuration: Configuration = None,
                secrets: Secrets = None) -> dict[str, Any]:
    """Fault ``istiod-outage``: scale ``cluster``'s istiod to zero (the runbook's P0
    "control plane down"); proxies keep their last configuration."""
    drill = drill_for(configuration)
    changes = drill.allow(cluster, "istiod-outage")
    try:
        previous = changes.scale(*ISTIOD, 0)
    except MeshproofError as exc:
        raise _failed(f"scaling istiod of {cluster} to 0", exc) from exc
    drill.mark("fault-start", "fault-start", f"istiod of {cluster} scaled {previous} → 0",
               cluster=cluster)
    return {"cluster": cluster, "previous_replicas": previous}


def restore(cluster: str, configuration: Configuration = None,
            secrets: Secrets = None) -> dict[str, Any]:
    """Take back every change the run made in ``cluster`` (newest first); also the
    rollback of every fault. Ends the fault window when something was undone."""
    drill = drill_for(configuration)
    changes = drill.changes.get(drill.cluster(cluster))
    if changes is None:
        return {"cluster": cluster, "undone": []}
    try:
        lines = changes.undo()
    except MeshproofError as exc:
        raise _failed(f"restoring {cluster}", exc) from exc
    if lines:
        drill.mark("fault-end", "fault-end", "; ".join(lines), cluster=cluster)
    return {"cluster": cluster, "undone": lines}


def restart_istiod(cluster: str, configuration: Configuration = None,
                   secrets: Secrets = None) -> dict[str, Any]:
    """The runbook's P0 recovery for ``cluster``: give istiod its replicas back, then
    ``kubectl rollout restart deployment/istiod`` and wait for the rollout.

    The restart is the runbook's own remedy and stays (as ``kubectl rollout restart``
    would): it is the template annotation ``kubectl.kubernetes.io/restartedAt``.
    """
    drill = drill_for(configuration)
    result = restore(cluster, configuration)
    api = drill.connections.api(cluster)
    path = f"/apis/apps/v1/namespaces/{ISTIOD[0]}/deployments/{ISTIOD[1]}"
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    timeouts = drill.target.resolved_timeouts
    try:
        api.merge_patch(path, {"spec": {"template": {"metadata": {
            "annotations": {RESTARTED_AT: stamp}}}}})

        def rolled_out() -> None:
            deployment = api.get(path)
            spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
            wanted = int(spec.get("replicas", 1))
            assert status.get("observedGeneration", 0) >= deployment["metadata"].get(
                "generation", 0), "the restart is not observed yet"
            assert int(status.get("updatedReplicas") or 0) >= wanted, "replicas not updated"
            assert int(status.get("availableReplicas") or 0) >= wanted, "replicas not available"

        eventually(rolled_out, timeout=timeouts.rollout, interval=timeouts.poll_interval,
                   what=f"istiod rollout on {cluster}")
    except MeshproofError as exc:
        raise _failed(f"restarting istiod on {cluster}", exc) from exc
    drill.mark("restarted", "recovery", f"istiod restarted and rolled out on {cluster}",
               cluster=cluster)
    return {**result, "restarted_at": stamp}


def add_http_fault(cluster: str, namespace: str, virtual_service: str, delay_ms: int = 0,
                   abort_status: int = 0, percentage: float = 100.0,
                   configuration: Configuration = None,
                   secrets: Secrets = None) -> dict[str, Any]:
    """Fault ``http-fault``: add Istio fault injection (a fixed delay and/or an abort
    status, for ``percentage`` % of requests) to every HTTP route of the VirtualService;
    ``restore`` removes it."""
    if delay_ms <= 0 and abort_status <= 0:
        raise ActivityFailed("add_http_fault: give delay_ms or abort_status (or both)")
    drill = drill_for(configuration)
    changes = drill.allow(cluster, "http-fault")
    path = (f"/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices/"
            f"{virtual_service}")
    fault: dict[str, Any] = {}
    if delay_ms > 0:
        fault["delay"] = {"fixedDelay": f"{delay_ms / 1000:g}s",
                          "percentage": {"value": percentage}}
    if abort_status > 0:
        fault["abort"] = {"httpStatus": abort_status, "percentage": {"value": percentage}}
    try:
        routes = copy.deepcopy((changes.api.get(path).get("spec") or {}).get("http") or [])
        for route in routes:
            route["fault"] = fault
        changes.patch(path, {"spec": {"http": routes}})
    except MeshproofError as exc:
        raise _failed(f"adding fault injection to {namespace}/{virtual_service}", exc) from exc
    drill.mark("fault-start", "fault-start",
               f"fault injection {fault} on virtualservice {namespace}/{virtual_service}",
               cluster=cluster)
    return {"cluster": cluster, "routes": len(routes), "fault": fault}
