"""Chaos Toolkit probes of meshproof: SLIs over Prometheus, probe-agent requests, Envoy
ejections, proxy sync, the runbook's alerts, and the verdict of a drill's guarantee.

Prometheus is reached with the target's settings for the cluster (URL, bearer
token file, CA bundle or ``insecure_skip_verify``). Probe-agent requests run from
the run's in-mesh agent in the named cluster. ``judge_guarantee`` turns what the
probes measured into the guarantee's verdict against the catalog's thresholds
(with the target's overrides) and fails the activity unless it held;
``drill_guarantees_held`` is the steady-state probe that sees that verdict.
"""

# No `from __future__ import annotations`: chaoslib reads the annotations at run time
# to give `chaos discover` portable argument types.

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from meshproof.chaos.judge import judge_circuit_break, judge_cp_recovery, judge_ew_failover
from meshproof.chaos.state import Drill, DrillProbes, drill_for
from meshproof.chaos.traffic import first_answer_from, success_between
from meshproof.checks.proxies import SYNC_KINDS, sync_status
from meshproof.clients.envoy import HostStatus, admin_get, parse_clusters, prometheus_stats
from meshproof.clients.istiod import DebugUnreadable
from meshproof.clients.kube import ClusterApi
from meshproof.clients.prometheus import PromQL
from meshproof.errors import ConfigError, MeshproofError
from meshproof.proxypod import has_proxy
from meshproof.sli.verdict import Judgement, Verdict
from meshproof.waiting import first_true

__all__ = [
    "alert_fires",
    "drill_guarantees_held",
    "judge_guarantee",
    "wait_for_alert",
    "overload_service",
    "proxies_in_sync",
    "service_success_ratio",
    "sli_value",
    "fail_until_ejected",
    "wait_for_ejection",
    "wait_for_recovery",
]

EJECTIONS_ACTIVE = "envoy_cluster_outlier_detection_ejections_active"
PENDING_OVERFLOW = "envoy_cluster_upstream_rq_pending_overflow"
OVERLOADED_HEADER = "x-envoy-overloaded"


def _outbound(service: str, namespace: str, port: int) -> str:
    return f"outbound|{port}||{service}.{namespace}.svc.cluster.local"


def _prometheus(drill: Drill, cluster: str) -> PromQL:
    prom = drill.connections.prometheus.get(drill.cluster(cluster))
    if prom is None:
        raise ActivityFailed(f"cluster {cluster} has no Prometheus in target "
                             f"{drill.target.name!r}; set clusters[].prometheus")
    return prom


def sli_value(cluster: str, query: str, configuration: Configuration = None,
              secrets: Secrets = None) -> float:
    """The value of a PromQL expression (summed over its series) on ``cluster``'s
    Prometheus; fails when the query has no result (nothing measured is not zero)."""
    drill = drill_for(configuration)
    try:
        samples = _prometheus(drill, cluster).instant(query)
    except MeshproofError as exc:
        raise ActivityFailed(f"query on {cluster}: {exc}") from exc
    if not samples:
        raise ActivityFailed(f"{query!r} has no result on {cluster}'s Prometheus")
    return float(sum(s.value for s in samples))


def _alert_expr(drill: Drill, alert: str) -> str:
    rules = {a.name: a for a in drill.catalog.alerts}
    if alert not in rules:
        raise ActivityFailed(f"no runbook alert {alert!r}; the catalog has "
                             f"{', '.join(sorted(rules))}")
    try:
        return rules[alert].render()
    except ConfigError as exc:
        raise ActivityFailed(str(exc)) from exc


def alert_fires(cluster: str, alert: str, configuration: Configuration = None,
                secrets: Secrets = None) -> bool:
    """Whether the runbook alert ``alert`` (its corrected PromQL from the catalog) returns
    a result on ``cluster``'s Prometheus now."""
    drill = drill_for(configuration)
    expr = _alert_expr(drill, alert)
    try:
        return bool(_prometheus(drill, cluster).instant(expr))
    except MeshproofError as exc:
        raise ActivityFailed(f"alert {alert} on {cluster}: {exc}") from exc


def wait_for_alert(cluster: str, alert: str, configuration: Configuration = None,
                   secrets: Secrets = None) -> dict[str, Any]:
    """Seconds from the fault's start until the runbook alert ``alert`` fires on
    ``cluster``'s Prometheus (the fault is detected); None when not within the alert
    timeout. The fault stays on meanwhile."""
    drill = drill_for(configuration)
    timeouts = drill.target.resolved_timeouts
    start = drill.moments.get("fault-start", time.time())
    fired = first_true(lambda: alert_fires(cluster, alert, configuration),
                       timeout=timeouts.alert_fire, interval=timeouts.poll_interval)
    result = {"alert": alert, "fired_s": None if fired is None else round(fired - start, 3),
              "waited_s": round(time.time() - start, 3)}
    if fired is not None:
        drill.mark(f"alert:{alert}", "detection", f"runbook alert {alert} fires "
                   f"{fired - start:.1f} s after the fault", cluster=cluster, at=fired)
    else:
        drill.note("detection", f"runbook alert {alert} did not fire within "
                   f"{result['waited_s']:.0f} s", cluster=cluster)
    drill.measurements.setdefault("alerts", {})[alert] = result
    return result


def service_success_ratio(from_cluster: str, service: str, namespace: str, port: int,
                          path: str = "/", count: int = 20,
                          configuration: Configuration = None,
                          secrets: Secrets = None) -> float:
    """Share of ``count`` requests from ``from_cluster``'s in-mesh probe to
    ``http://<service>.<namespace>:<port><path>`` answered 2xx."""
    drill = drill_for(configuration)
    try:
        answer = drill.probes().request(drill.cluster(from_cluster), "mesh", {
            "url": f"http://{service}.{namespace}:{port}{path}", "count": count,
            "timeout": drill.target.resolved_timeouts.api_request})
    except MeshproofError as exc:
        raise ActivityFailed(f"requests from {from_cluster}: {exc}") from exc
    results = answer.get("results") or []
    good = sum(1 for r in results if 200 <= int(r.get("status") or 0) < 300)
    return good / len(results) if results else 0.0


def _stat(drill: Drill, cluster: str, name: str, outbound: str) -> float | None:
    fleet = drill.probes()
    samples = prometheus_stats(drill.connections.api(cluster), fleet.namespace,
                               fleet.pod_name("mesh"))
    values = [s.value for s in samples
              if s.name in (name, f"{name}_total") and s.labels.get("cluster_name") == outbound]
    return sum(values) if values else None


def _no_stat(name: str, cluster: str) -> ActivityFailed:
    return ActivityFailed(
        f"the probe's sidecar on {cluster} exports no {name}: Istio keeps outlier and "
        "upstream stats only when proxyStatsMatcher includes them (inclusionRegexps "
        "'.*outlier_detection.*', '.*upstream_rq_.*' in meshConfig.defaultConfig)")


def wait_for_ejection(from_cluster: str, service: str, namespace: str, port: int,
                      configuration: Configuration = None,
                      secrets: Secrets = None) -> dict[str, Any]:
    """Seconds from the fault's start until ``from_cluster``'s probe sidecar ejects an
    endpoint of the service (Envoy ``outlier_detection.ejections_active``); ``eject_s``
    is None when nothing was ejected within the eject timeout."""
    drill = drill_for(configuration)
    cluster = drill.cluster(from_cluster)
    outbound = _outbound(service, namespace, port)
    timeouts = drill.target.resolved_timeouts
    start = drill.moments.get("fault-start", time.time())
    limit = max(timeouts.eject, float(drill.thresholds("EW-FAILOVER")["max_eject_s"]))
    seen: float | None = None
    detector = True
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            active = _stat(drill, cluster, EJECTIONS_ACTIVE, outbound)
        except MeshproofError as exc:
            raise ActivityFailed(f"reading the probe's Envoy stats on {cluster}: {exc}") from exc
        if active is None and not _has_outlier_detection(drill, cluster, service, namespace):
            # Envoy has no outlier detector for a cluster without outlierDetection, hence
            # no stat: nothing can ever be ejected, which is the measurement.
            detector = False
            break
        if active is None:
            raise _no_stat(EJECTIONS_ACTIVE, cluster)
        if active >= 1:
            seen = time.time()
            break
        time.sleep(timeouts.poll_interval)
    waited = round(time.time() - start, 3)
    result = {"eject_s": None if seen is None else round(seen - start, 3),
              "eject_waited_s": waited, "cluster_name": outbound,
              "outlier_detection": detector}
    if seen is not None:
        drill.mark("ejected", "ejection", f"{outbound} ejected an endpoint "
                   f"{seen - start:.1f} s after the fault", cluster=cluster, at=seen)
    elif not detector:
        drill.note("ejection", f"no DestinationRule gives {service}.{namespace} outlier "
                   f"detection in {cluster}: nothing can be ejected", cluster=cluster)
    else:
        drill.note("ejection", f"no endpoint of {outbound} ejected within {waited:.0f} s",
                   cluster=cluster)
    drill.measurements["ejection"] = result
    return result


def _has_outlier_detection(drill: Drill, cluster: str, service: str, namespace: str) -> bool:
    """Whether a DestinationRule in ``cluster`` gives the service outlier detection."""
    rules = drill.connections.api(cluster).get(
        f"/apis/networking.istio.io/v1/namespaces/{namespace}/destinationrules")
    hosts = {service, f"{service}.{namespace}", f"{service}.{namespace}.svc.cluster.local"}
    return any((rule.get("spec") or {}).get("host") in hosts
               and "outlierDetection" in json.dumps(rule.get("spec"))
               for rule in rules.get("items") or [])


def wait_for_recovery(traffic: str, cluster: str, configuration: Configuration = None,
                      secrets: Secrets = None) -> dict[str, Any]:
    """Seconds from the fault's end until recorder ``traffic`` gets a successful answer
    from a pod of ``cluster`` again (cross-cluster traffic is back); None when not within
    the recover timeout."""
    drill = drill_for(configuration)
    recorder = drill.recorders.get(traffic)
    if recorder is None:
        raise ActivityFailed(f"no traffic recorder {traffic!r}; start_traffic first")
    timeouts = drill.target.resolved_timeouts
    end = drill.moments.get("fault-end")
    if end is None:
        raise ActivityFailed("the fault has not ended (restore the cluster first)")
    back: float | None = None
    deadline = time.monotonic() + timeouts.recover
    while time.monotonic() < deadline:
        back = first_answer_from(recorder.samples, drill.cluster(cluster), end)
        if back is not None:
            break
        time.sleep(timeouts.poll_interval)
    result = {"recover_s": None if back is None else round(back - end, 3),
              "recover_waited_s": round(time.time() - end, 3)}
    if back is not None:
        drill.mark("recovered", "recovery", f"requests from {recorder.cluster} served by "
                   f"{cluster} again {back - end:.1f} s after the restore", cluster=cluster,
                   at=back)
    drill.measurements["recovery"] = result
    return result


def _sidecars(api: ClusterApi) -> set[str]:
    """``<pod>.<namespace>`` of every running pod with an Istio proxy (either shape)."""
    found: set[str] = set()
    for pod in api.get("/api/v1/pods").get("items") or []:
        meta, status = pod["metadata"], pod.get("status") or {}
        if meta.get("deletionTimestamp") or status.get("phase") != "Running":
            continue
        if has_proxy(pod):
            found.add(f"{meta['name']}.{meta['namespace']}")
    return found


def proxies_in_sync(cluster: str, configuration: Configuration = None,
                    secrets: Secrets = None) -> dict[str, Any]:
    """Wait (up to the proxy resync timeout) until istiod of ``cluster`` reports every
    running proxy of the cluster connected and in sync (``/debug/syncz`` by exec of
    ``pilot-discovery request`` in istiod: each kind acknowledged as sent); fails the
    activity at once when istiod's debug endpoints cannot be read at all; reports the
    proxies, how many are synced, and the rest."""
    drill = drill_for(configuration)
    api = drill.connections.api(drill.cluster(cluster))
    timeouts = drill.target.resolved_timeouts
    start = time.time()
    deadline = time.monotonic() + timeouts.proxy_resync
    while True:
        try:
            proxies, rows = _sidecars(api), sync_status(api)
        except DebugUnreadable as exc:
            raise ActivityFailed(f"waiting for the proxies of {cluster} to sync: {exc}") from exc
        except MeshproofError:
            proxies, rows = set(), {}
        behind = sorted(p for p in proxies if p not in rows or any(
            rows[p].get(f"{k}_sent") != rows[p].get(f"{k}_acked") for k in SYNC_KINDS))
        if (proxies and not behind) or time.monotonic() >= deadline:
            break
        time.sleep(timeouts.poll_interval)
    result = {"proxies": len(proxies), "synced": len(proxies) - len(behind), "stale": behind,
              "sync_s": round(time.time() - start, 3)}
    if proxies and not behind:
        drill.note("recovery", f"all {len(proxies)} proxies in sync with istiod",
                   cluster=cluster)
    drill.measurements["sync"] = result
    return result


def _trip(configuration: Configuration, from_cluster: str) -> tuple[Drill, str, DrillProbes]:
    """The drill, the client cluster once ``circuit-breaker-trip`` is allowed there, and the
    probes that make the load."""
    drill = drill_for(configuration)
    cluster = drill.cluster(from_cluster)
    drill.allow(cluster, "circuit-breaker-trip")
    return drill, cluster, drill.probes()


def overload_service(from_cluster: str, service: str, namespace: str, port: int,
                     path: str = "/delay/0.5", parallel: int = 12,
                     configuration: Configuration = None,
                     secrets: Secrets = None) -> dict[str, Any]:
    """Fault ``circuit-breaker-trip`` (load): ``parallel`` simultaneous requests from
    ``from_cluster``'s probe to a slow path of the service; counts the 503s, those marked
    ``x-envoy-overloaded`` (flag UO), and Envoy's pending-overflow counter increase."""
    drill, cluster, fleet = _trip(configuration, from_cluster)
    outbound = _outbound(service, namespace, port)
    url = f"http://{service}.{namespace}:{port}{path}"
    timeout = drill.target.resolved_timeouts.api_request
    try:
        before = _stat(drill, cluster, PENDING_OVERFLOW, outbound) or 0.0
        drill.mark("fault-start", "fault-start", f"{parallel} parallel requests to {url}",
                   cluster=cluster)
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            answers = list(pool.map(lambda _: fleet.request(
                cluster, "mesh", {"url": url, "count": 1, "timeout": timeout}), range(parallel)))
        after = _stat(drill, cluster, PENDING_OVERFLOW, outbound)
    except MeshproofError as exc:
        raise ActivityFailed(f"overloading {url} from {cluster}: {exc}") from exc
    if after is None:
        raise _no_stat(PENDING_OVERFLOW, cluster)
    results = [r for a in answers for r in a.get("results") or []]
    shed = [r for r in results if int(r.get("status") or 0) == 503]
    shed_uo = [r for r in shed if {k.lower(): v for k, v in (r.get("headers") or {}).items()}
               .get(OVERLOADED_HEADER) == "true"]
    result = {"requests": len(results), "shed": len(shed), "shed_uo": len(shed_uo),
              "overflow": int(after - before),
              "ok": sum(1 for r in results if 200 <= int(r.get("status") or 0) < 300)}
    drill.note("detection", f"{len(shed)} of {len(results)} requests shed, {len(shed_uo)} "
               f"with UO; upstream_rq_pending_overflow +{result['overflow']}", cluster=cluster)
    drill.measurements["overload"] = result
    return result


def fail_until_ejected(from_cluster: str, service: str, namespace: str, port: int,
                       path: str = "/status/500", max_requests: int = 40,
                       configuration: Configuration = None,
                       secrets: Secrets = None) -> dict[str, Any]:
    """Fault ``circuit-breaker-trip`` (errors): requests from ``from_cluster``'s probe to
    a path answering 5xx, one at a time, until the sidecar ejects a host; reports how
    many 5xx the ejected host returned before (``consecutive_5xx``, from Envoy's per-host
    ``rq_error`` in ``/clusters``) and the seconds it took."""
    drill, cluster, fleet = _trip(configuration, from_cluster)
    outbound = _outbound(service, namespace, port)
    url = f"http://{service}.{namespace}:{port}{path}"
    timeout = drill.target.resolved_timeouts.api_request
    start = time.time()
    errors = 0
    ejected: HostStatus | None = None
    try:
        before = {h.address: int(h.stats.get("rq_error") or 0)
                  for h in _hosts(drill, cluster, outbound)}
        for _ in range(max_requests):
            answer = fleet.request(cluster, "mesh", {"url": url, "count": 1, "timeout": timeout})
            status = int(((answer.get("results") or [{}])[0]).get("status") or 0)
            errors += 1 if status >= 500 or status == 0 else 0
            ejected = next((h for h in _hosts(drill, cluster, outbound)
                            if "failed_outlier_check" in h.health_flags), None)
            if ejected is not None:
                break
    except MeshproofError as exc:
        raise ActivityFailed(f"sending failing requests to {url} from {cluster}: {exc}") from exc
    now = time.time()
    consecutive = None if ejected is None else (
        int(ejected.stats.get("rq_error") or 0) - before.get(ejected.address, 0))
    result = {"consecutive_5xx": consecutive, "errors_sent": errors,
              "ejected_host": None if ejected is None else ejected.address,
              "eject_s": None if ejected is None else round(now - start, 3),
              "eject_waited_s": round(now - start, 3)}
    if ejected is not None:
        drill.mark("ejected", "ejection", f"host {ejected.address} of {outbound} ejected "
                   f"after {consecutive} consecutive 5xx", cluster=cluster, at=now)
    drill.measurements["ejection"] = result
    return result


def _hosts(drill: Drill, cluster: str, outbound: str) -> list[HostStatus]:
    """The hosts of Envoy cluster ``outbound`` in the probe's sidecar (admin ``/clusters``)."""
    fleet = drill.probes()
    text = admin_get(drill.connections.api(cluster), fleet.namespace, fleet.pod_name("mesh"),
                     "clusters")
    return [h for h in parse_clusters(text) if h.cluster == outbound]


def _measured(drill: Drill, guarantee: str, traffic: str) -> dict[str, Any]:
    recorder = drill.recorders.get(traffic) if traffic else None
    measured: dict[str, Any] = {}
    if recorder is not None:
        start = drill.moments.get("fault-start")
        end = drill.moments.get("fault-end") or time.time()
        if start is None:
            raise ActivityFailed(f"{guarantee}: no fault was applied, nothing to judge")
        measured["good"], measured["total"] = success_between(recorder.samples, start, end)
    for key in ("ejection", "recovery", "sync", "overload"):
        measured.update(drill.measurements.get(key) or {})
    return measured


_JUDGES = {"EW-FAILOVER": judge_ew_failover, "CP-RECOVERY": judge_cp_recovery,
           "CIRCUIT-BREAK": judge_circuit_break}


def judge_guarantee(guarantee: str, traffic: str = "", configuration: Configuration = None,
                    secrets: Secrets = None) -> dict[str, Any]:
    """The verdict of ``guarantee`` from what this drill measured (traffic recorder
    ``traffic`` during the fault window, ejection, recovery, sync, overload) against the
    catalog's thresholds; fails the activity unless the guarantee held."""
    drill = drill_for(configuration)
    judge = _JUDGES.get(guarantee)
    if judge is None:
        raise ActivityFailed(f"no drill judge for {guarantee!r}; drills judge "
                             f"{', '.join(sorted(_JUDGES))}")
    try:
        judgement = judge(_measured(drill, guarantee, traffic), drill.thresholds(guarantee))
    except KeyError as exc:
        judgement = Judgement(Verdict.NOT_MEASURABLE,
                              f"{guarantee}: the drill did not measure {exc.args[0]}")
    return drill.settle(guarantee, judgement)


def drill_guarantees_held(configuration: Configuration = None,
                          secrets: Secrets = None) -> bool:
    """Steady state of a drill: True while no fault has been applied, and after one only
    when every guarantee the drill judged held (a fault left unjudged is not held)."""
    drill = drill_for(configuration)
    if not drill.faults:
        return True
    return bool(drill.judgements) and all(j.held for j in drill.judgements.values())
