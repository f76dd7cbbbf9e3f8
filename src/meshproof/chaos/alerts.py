"""Chaos Toolkit activities of the ALERTS drill: each runbook alert fires under its fault.

A drill applies the fault an alert of the runbook describes (the catalog's ``alerts``:
``trigger``), waits for the alert's corrected PromQL (``expr``) to return a result on
the Prometheus that should see it, and judges ALERTS: held only when every alert
measured fired within the catalog's ``max_fire_s``; violated when one did not (named,
with the expression evaluated); not measurable for the alerts no fault was applied
for on this target. Faults, in the blast radius's names:

- ``istiod-outage``, ``eastwest-gateway-loss``: ``meshproof.chaos.actions``;
- ``http-fault``: ``delay_cross_cluster_route``, an Istio fault delay on the client's
  route to a service served in another cluster (CrossClusterLatencyHigh);
- ``certificate-expiring``: ``issue_short_lived_certificate``, a cert-manager
  Certificate in the run's probe namespace whose lifetime is under 7 days;
- ``tls-handshake-failures``: ``fail_mtls_handshakes``, TLS connections without a
  client certificate from the run's non-injected probe to a STRICT sidecar's inbound
  listener (Envoy counts ``listener.0.0.0.0_15006.ssl.connection_error``).

Every write goes through ``meshproof.safety.Changes``; ``meshproof.chaos.actions.restore``
takes it back. The judgement functions (``judge_alerts_fired``, ``measurements_of``) are
pure and shared with the ALERTS feature's steps, so ``chaos run`` and ``meshproof run``
decide alike.
"""

# No `from __future__ import annotations`: chaoslib reads the annotations at run time
# to give `chaos discover` portable argument types.

import datetime as dt
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, DiscoveredActivities, Secrets

from meshproof.catalog import Alert
from meshproof.chaos import actions
from meshproof.chaos.discovery import typed_activities
from meshproof.chaos.state import Drill, drill_for
from meshproof.clients.prometheus import PromQL
from meshproof.errors import ConfigError, MeshproofError
from meshproof.proxypod import has_proxy
from meshproof.sli.verdict import Judgement, Verdict
from meshproof.waiting import first_true

__all__ = [
    "alerts_verdict",
    "cross_cluster_latency_recovered",
    "delay_cross_cluster_route",
    "fail_mtls_handshakes",
    "issue_short_lived_certificate",
    "judge_alerts_fired",
    "load_exported_activities",
    "measurements_of",
    "wait_for_alert_to_clear",
    "wait_for_alert_to_fire",
]

GUARANTEE = "ALERTS"
MEASURED = "alerts_fired"
"""Key of the drill's measurements: one dict per (alert, cluster) waited for."""
PROBES = ("wait_for_alert_to_fire", "wait_for_alert_to_clear",
          "cross_cluster_latency_recovered", "alerts_verdict")
NOT_ACTIVITIES = ("judge_alerts_fired", "load_exported_activities", "measurements_of")
INBOUND_PORT = 15006
"""The sidecar's inbound listener (``0.0.0.0_15006``), where Envoy counts TLS errors."""
LATENCY_GUARANTEE = "XC-LATENCY"
DURATION_BUCKET = "istio_request_duration_milliseconds_bucket"


# -- the judgement (pure) ----------------------------------------------------------------


def measurements_of(evidence: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The per-alert measurements an ALERTS judgement keeps in its evidence."""
    return [dict(m) for m in evidence.get("measured") or [] if isinstance(m, Mapping)]


def _row(alert: Alert, result: str) -> dict[str, Any]:
    return {"alert": alert.name, "severity": alert.severity, "expr": alert.expr,
            "runbook_expr": alert.runbook_expr, "correction": alert.correction,
            "result": result}


def _failure(m: Mapping[str, Any], max_fire_s: float) -> str | None:
    """Why measurement ``m`` does not show its alert firing under its fault (None: it does)."""
    fired = m.get("fired_s")
    where = f"{m.get('alert')} on {m.get('cluster')}"
    if fired is None:
        return (f"{where} did not fire within the {float(m.get('waited_s') or 0):.0f} s "
                f"waited; expression evaluated: {m.get('expr')}")
    if float(fired) > max_fire_s:
        return (f"{where} fired only after {float(fired):.1f} s (limit {max_fire_s:g} s); "
                f"expression evaluated: {m.get('expr')}")
    return None


def judge_alerts_fired(alerts: Sequence[Alert], measured: Iterable[Mapping[str, Any]], *,
                       min_fired_ratio: float, max_fire_s: float) -> Judgement:
    """ALERTS over ``alerts``: each must have been measured (its fault applied and its
    expression waited for) and have fired within ``max_fire_s`` of its fault, in every
    cluster it was measured in.

    ``measured``: dicts with ``alert``, ``cluster``, ``expr`` (as evaluated),
    ``fired_s`` (None: did not fire), ``waited_s`` and ``firing_before`` (the
    expression already returned a result when the fault started, so its firing
    proves nothing). Violated when the share of measurements that fired is below
    ``min_fired_ratio`` (each failure named with its expression); else not measurable
    when an alert was not measured (listed); else held. Evidence: one row per alert
    with the runbook's expression, the correction and the result.
    """
    by_alert: dict[str, list[Mapping[str, Any]]] = {}
    for m in measured:
        by_alert.setdefault(str(m.get("alert")), []).append(m)
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    unmeasured: list[str] = []
    fired = counted = 0
    kept: list[dict[str, Any]] = []
    for alert in alerts:
        mine = by_alert.get(alert.name) or []
        usable = [m for m in mine if not m.get("firing_before")]
        kept.extend(dict(m) for m in mine)
        if not usable:
            why = ("already firing when its fault started" if mine
                   else "no fault for it was applied on this target")
            unmeasured.append(f"{alert.name} ({why})")
            rows.append(_row(alert, f"not measurable: {why}"))
            continue
        mine_failed = [f for f in (_failure(m, max_fire_s) for m in usable) if f]
        counted += len(usable)
        fired += len(usable) - len(mine_failed)
        failures.extend(mine_failed)
        clusters = ", ".join(sorted({str(m.get("cluster")) for m in usable}))
        rows.append(_row(alert, "; ".join(mine_failed) if mine_failed else
                         "fired on " + clusters + " after " + ", ".join(
                             f"{float(m['fired_s']):.1f} s" for m in usable)))
    ratio = fired / counted if counted else None
    evidence: dict[str, Any] = {"alerts": rows, "measured": kept, "fired": fired,
                                "measurements": counted, "fired_ratio": ratio,
                                "required": min_fired_ratio, "max_fire_s": max_fire_s}
    if counted and ratio is not None and ratio < min_fired_ratio:
        return Judgement(Verdict.VIOLATED, f"{GUARANTEE}: " + "; ".join(failures), evidence)
    if unmeasured:
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"{GUARANTEE}: not measurable on this target: "
                         f"{', '.join(unmeasured)}"
                         + (f"; the other {fired} measurement(s) fired" if counted else ""),
                         evidence)
    return Judgement(Verdict.HELD,
                     f"{GUARANTEE}: {', '.join(a.name for a in alerts)} fired under their "
                     f"faults ({fired} of {counted} measurements, each within "
                     f"{max_fire_s:g} s)", evidence)


# -- evaluating an alert ----------------------------------------------------------------


def _prometheus(drill: Drill, cluster: str) -> PromQL:
    prom = drill.connections.prometheus.get(drill.cluster(cluster))
    if prom is None:
        raise ActivityFailed(f"cluster {cluster} has no Prometheus in target "
                             f"{drill.target.name!r}; set clusters[].prometheus")
    return prom


def _alert(drill: Drill, name: str) -> Alert:
    rules = {a.name: a for a in drill.catalog.alerts}
    if name not in rules:
        raise ActivityFailed(f"no runbook alert {name!r}; the catalog has "
                             f"{', '.join(sorted(rules))}")
    return rules[name]


def _expr(drill: Drill, alert: Alert, source_cluster: str, destination_cluster: str) -> str:
    values = {}
    if source_cluster:
        values["source_cluster"] = drill.cluster(source_cluster)
    if destination_cluster:
        values["destination_cluster"] = drill.cluster(destination_cluster)
    try:
        return alert.render(**values)
    except ConfigError as exc:
        raise ActivityFailed(f"{exc}: give source_cluster and destination_cluster") from exc


def _fires(prom: PromQL, expr: str, *, at: float | None = None) -> bool:
    when = None if at is None else dt.datetime.fromtimestamp(at, dt.UTC)
    return bool(prom.instant(expr, at=when))


def wait_for_alert_to_fire(cluster: str, alert: str, source_cluster: str = "",
                           destination_cluster: str = "",
                           configuration: Configuration = None,
                           secrets: Secrets = None) -> dict[str, Any]:
    """Seconds from the fault's start until runbook alert ``alert`` (the catalog's
    corrected PromQL, placeholders filled with ``source_cluster`` / ``destination_cluster``)
    returns a result on ``cluster``'s Prometheus; ``fired_s`` is None when not within the
    alert timeout. Also records whether it already fired when the fault started."""
    drill = drill_for(configuration)
    rule = _alert(drill, alert)
    expr = _expr(drill, rule, source_cluster, destination_cluster)
    prom = _prometheus(drill, cluster)
    timeouts = drill.target.resolved_timeouts
    start = drill.moments.get("fault-start")
    if start is None:
        raise ActivityFailed(f"{alert}: no fault was applied, nothing to wait for")
    try:
        before = _fires(prom, expr, at=start)
        fired = first_true(lambda: _fires(prom, expr), timeout=timeouts.alert_fire,
                           interval=timeouts.poll_interval)
    except MeshproofError as exc:
        raise ActivityFailed(f"alert {alert} on {cluster}: {exc}") from exc
    result = {"alert": alert, "cluster": cluster, "expr": expr, "firing_before": before,
              "fired_s": None if fired is None else round(fired - start, 3),
              "waited_s": round(time.time() - start, 3)}
    if fired is not None:
        drill.mark(f"alert:{alert}", "detection", f"runbook alert {alert} fires "
                   f"{fired - start:.1f} s after the fault", cluster=cluster, at=fired)
    else:
        drill.note("detection", f"runbook alert {alert} did not fire within "
                   f"{result['waited_s']:.0f} s: {expr}", cluster=cluster)
    drill.measurements.setdefault(MEASURED, []).append(result)
    return result


def wait_for_alert_to_clear(cluster: str, alert: str, source_cluster: str = "",
                            destination_cluster: str = "",
                            configuration: Configuration = None,
                            secrets: Secrets = None) -> dict[str, Any]:
    """After the restore: seconds until ``alert`` returns nothing again on ``cluster``'s
    Prometheus (the faulted component is back and scraped); ``cleared_s`` is None when
    not within the recover timeout."""
    drill = drill_for(configuration)
    expr = _expr(drill, _alert(drill, alert), source_cluster, destination_cluster)
    prom = _prometheus(drill, cluster)
    timeouts = drill.target.resolved_timeouts
    end = drill.moments.get("fault-end", time.time())
    try:
        cleared = first_true(lambda: not _fires(prom, expr), timeout=timeouts.recover,
                             interval=timeouts.poll_interval)
    except MeshproofError as exc:
        raise ActivityFailed(f"alert {alert} on {cluster}: {exc}") from exc
    result = {"alert": alert, "cluster": cluster,
              "cleared_s": None if cleared is None else round(cleared - end, 3)}
    if cleared is not None:
        drill.note("recovery", f"runbook alert {alert} silent again {cleared - end:.1f} s "
                   "after the restore", cluster=cluster, at=cleared)
    else:
        drill.note("recovery", f"runbook alert {alert} still fires "
                   f"{timeouts.recover:.0f} s after the restore", cluster=cluster)
    return result


# -- faults ---------------------------------------------------------------------------------


def _hosts_of(service: str, namespace: str) -> set[str]:
    return {service, f"{service}.{namespace}", f"{service}.{namespace}.svc.cluster.local"}


def delay_cross_cluster_route(client_cluster: str, service: str, namespace: str,
                              delay_ms: int, percentage: float = 100.0,
                              configuration: Configuration = None,
                              secrets: Secrets = None) -> dict[str, Any]:
    """Fault ``http-fault`` in ``client_cluster``: an Istio fault delay of ``delay_ms`` on
    its route to ``<service>.<namespace>`` (applied by the client's sidecars, so every
    request from there to the service's endpoints in the other clusters is slower).

    A VirtualService for the service gets the delay on every HTTP route
    (``meshproof.chaos.actions.add_http_fault``); without one, a VirtualService
    routing to the service unchanged but for the delay is created. ``restore`` takes
    either back."""
    drill = drill_for(configuration)
    cluster = drill.cluster(client_cluster)
    changes = drill.allow(cluster, "http-fault")
    base = f"/apis/networking.istio.io/v1/namespaces/{namespace}/virtualservices"
    try:
        existing = [vs for vs in changes.api.get(base).get("items") or []
                    if _hosts_of(service, namespace) & set((vs.get("spec") or {}).get("hosts")
                                                           or [])]
    except MeshproofError as exc:
        raise ActivityFailed(f"listing virtualservices in {namespace} on {cluster}: "
                             f"{exc}") from exc
    if existing:
        return actions.add_http_fault(cluster, namespace, existing[0]["metadata"]["name"],
                                      delay_ms=delay_ms, percentage=percentage,
                                      configuration=configuration)
    fault = {"delay": {"fixedDelay": f"{delay_ms / 1000:g}s",
                       "percentage": {"value": percentage}}}
    name = f"meshproof-delay-{service}"[:63]
    try:
        changes.create({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"hosts": [service], "http": [
                {"name": "meshproof-delay", "fault": fault,
                 "route": [{"destination": {"host": service}}]}]}})
    except MeshproofError as exc:
        raise ActivityFailed(f"creating virtualservice {namespace}/{name} on {cluster}: "
                             f"{exc}") from exc
    drill.mark("fault-start", "fault-start", f"fault delay {delay_ms} ms on the route to "
               f"{service}.{namespace} (new virtualservice {name})", cluster=cluster)
    return {"cluster": cluster, "virtual_service": name, "fault": fault}


def issue_short_lived_certificate(cluster: str, duration: str = "72h",
                                  configuration: Configuration = None,
                                  secrets: Secrets = None) -> dict[str, Any]:
    """Fault ``certificate-expiring``: a self-signed cert-manager Issuer and a Certificate
    of lifetime ``duration`` (under the alert's 7 days; renewBefore left to cert-manager's
    default, a third of it, so it is not renewed during the drill) in the run's probe
    namespace of ``cluster``. ``restore`` deletes both; the namespace goes with the probes."""
    drill = drill_for(configuration)
    cluster = drill.cluster(cluster)
    changes = drill.allow(cluster, "certificate-expiring")
    namespace = drill.probes().namespace
    issuer = "meshproof-alerts-selfsigned"
    name = "meshproof-alerts-expiring"
    try:
        changes.create({"apiVersion": "cert-manager.io/v1", "kind": "Issuer",
                        "metadata": {"name": issuer, "namespace": namespace},
                        "spec": {"selfSigned": {}}})
        changes.create({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                        "metadata": {"name": name, "namespace": namespace},
                        "spec": {"secretName": name, "duration": duration,
                                 "commonName": name, "dnsNames": [f"{name}.{namespace}"],
                                 "issuerRef": {"name": issuer, "kind": "Issuer",
                                               "group": "cert-manager.io"}}})
    except MeshproofError as exc:
        raise ActivityFailed(f"creating certificate {namespace}/{name} on {cluster}: "
                             f"{exc}") from exc
    drill.mark("fault-start", "fault-start", f"certificate {namespace}/{name} issued for "
               f"{duration}", cluster=cluster)
    return {"cluster": cluster, "namespace": namespace, "certificate": name,
            "duration": duration}


def _sidecar_pod(drill: Drill, cluster: str, namespace: str, app: str) -> dict[str, Any]:
    pods = drill.connections.api(cluster).get(f"/api/v1/namespaces/{namespace}/pods",
                                              labelSelector=f"app={app}")
    for pod in pods.get("items") or []:
        status = pod.get("status") or {}
        if (status.get("phase") == "Running" and status.get("podIP")
                and not pod["metadata"].get("deletionTimestamp")
                and has_proxy(pod)):
            return pod
    raise ActivityFailed(f"no running pod app={app} with a sidecar in {namespace} on "
                         f"{cluster}")


class _FailingHandshakes:
    """TLS connections without a client certificate, one per poll interval, in the
    background until ``count`` were made or ``stop`` (the drill's ``close`` calls it).

    Spread over time rather than sent at once: a counter series that first appears
    with all its errors already counted has no increase for ``rate()`` to see."""

    def __init__(self, fleet: Any, cluster: str, spec: dict[str, Any], *, count: int,
                 interval: float) -> None:
        self.fleet, self.cluster, self.spec = fleet, cluster, spec
        self.count, self.interval = count, interval
        self.made = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tls-failures-{cluster}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while self.made < self.count and not self._stop.is_set():
            try:
                self.fleet.tls(self.cluster, "plain", self.spec)
            except MeshproofError as exc:
                self.errors.append(str(exc)[:200])
            self.made += 1
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=float(self.spec.get("timeout") or 5) + 5)

    def summary(self) -> dict[str, Any]:
        """Totals for the report's load section (``stop_traffic``): every connection is a
        failure, by design."""
        elapsed = max(self.interval, self.made * self.interval)
        return {"requests": self.made, "failures": self.made,
                "rps": round(self.made / elapsed, 2),
                "url": f"tls://{self.spec['host']}:{self.spec['port']}",
                "cluster": self.cluster, "agent_errors": len(self.errors)}


def fail_mtls_handshakes(cluster: str, namespace: str, app: str, count: int = 120,
                         configuration: Configuration = None,
                         secrets: Secrets = None) -> dict[str, Any]:
    """Fault ``tls-handshake-failures``: up to ``count`` TLS connections without a client
    certificate, one per poll interval in the background, from the run's non-injected
    probe in ``cluster`` to the inbound listener (port 15006) of a sidecar of ``app`` in
    ``namespace``, whose PeerAuthentication must be STRICT: the sidecar refuses each
    handshake and counts ``listener.0.0.0.0_15006.ssl.connection_error``. They stop
    after ``count``, or with the probe agents (``remove_probe_agents``). Nothing is
    changed in the cluster."""
    drill = drill_for(configuration)
    cluster = drill.cluster(cluster)
    drill.allow(cluster, "tls-handshake-failures")
    timeouts = drill.target.resolved_timeouts
    try:
        fleet = drill.probes()
        pod = _sidecar_pod(drill, cluster, namespace, app)
    except MeshproofError as exc:
        raise ActivityFailed(f"finding a sidecar of {namespace}/{app} on {cluster}: "
                             f"{exc}") from exc
    ip = str(pod["status"]["podIP"])
    name = f"tls-handshake-failures:{cluster}"
    if name in drill.recorders:
        drill.recorders.pop(name).stop()
    sender = _FailingHandshakes(fleet, cluster, {"host": ip, "port": INBOUND_PORT,
                                                 "timeout": timeouts.api_request},
                                count=count, interval=timeouts.poll_interval)
    drill.recorders[name] = sender
    drill.mark("fault-start", "fault-start", f"TLS connections without a client "
               f"certificate to {namespace}/{pod['metadata']['name']} {ip}:{INBOUND_PORT}, "
               f"one every {timeouts.poll_interval:g} s (at most {count})", cluster=cluster)
    sender.start()
    return {"cluster": cluster, "pod": pod["metadata"]["name"], "address": ip,
            "port": INBOUND_PORT, "at_most": count}


# -- the mitigation of CrossClusterLatencyHigh ------------------------------------------------


def cross_cluster_latency_recovered(from_cluster: str, to_cluster: str,
                                    configuration: Configuration = None,
                                    secrets: Secrets = None) -> dict[str, Any]:
    """After the mitigation: seconds from the fault's end until XC-LATENCY's quantile of
    requests from ``from_cluster`` to ``to_cluster`` (``reporter="source"``), over the
    window since then, is within XC-LATENCY's ``max_ms`` again; ``recover_s`` is None when
    not within the recover timeout."""
    drill = drill_for(configuration)
    source, destination = drill.cluster(from_cluster), drill.cluster(to_cluster)
    prom = _prometheus(drill, source)
    thresholds = drill.thresholds(LATENCY_GUARANTEE)
    quantile, max_ms = float(thresholds["quantile"]), float(thresholds["max_ms"])
    timeouts = drill.target.resolved_timeouts
    end = drill.moments.get("fault-end")
    if end is None:
        raise ActivityFailed("the fault has not ended (restore the cluster first)")
    selector = (f'reporter="source", source_cluster="{source}", '
                f'destination_cluster="{destination}"')
    back: float | None = None
    value: float | None = None
    deadline = time.monotonic() + timeouts.recover
    try:
        while time.monotonic() < deadline:
            window = max(1, int(time.time() - end))
            samples = prom.instant(f"histogram_quantile({quantile:g}, sum by (le) (increase("
                                   f"{DURATION_BUCKET}{{{selector}}}[{window}s])))")
            value = samples[0].value if samples else None
            if value is not None and value == value and value <= max_ms:
                back = time.time()
                break
            time.sleep(timeouts.poll_interval)
    except MeshproofError as exc:
        raise ActivityFailed(f"cross-cluster latency on {source}: {exc}") from exc
    result = {"recover_s": None if back is None else round(back - end, 3),
              "recover_waited_s": round(time.time() - end, 3),
              "quantile": quantile, "value_ms": value, "max_ms": max_ms}
    if back is not None:
        drill.mark("recovered", "recovery", f"cross-cluster p{quantile * 100:g} "
                   f"{source} → {destination} {value:.0f} ms (≤ {max_ms:g} ms) "
                   f"{back - end:.1f} s after the mitigation", cluster=source, at=back)
    else:
        drill.note("recovery", f"cross-cluster p{quantile * 100:g} {source} → "
                   f"{destination} still over {max_ms:g} ms", cluster=source)
    drill.measurements["latency_recovery"] = result
    return result


# -- the verdict ------------------------------------------------------------------------------


def alerts_verdict(configuration: Configuration = None,
                   secrets: Secrets = None) -> dict[str, Any]:
    """ALERTS for the alerts this drill waited for (the catalog's ``min_fired_ratio`` and
    ``max_fire_s``), and, when it measured one, the cross-cluster latency's recovery after
    the mitigation; fails the activity unless held. The ALERTS scenario judges every
    runbook alert from all its drills."""
    drill = drill_for(configuration)
    measured = list(drill.measurements.get(MEASURED) or [])
    names = {str(m["alert"]) for m in measured}
    if not names:
        raise ActivityFailed(f"{GUARANTEE}: no alert was waited for, nothing to judge")
    thresholds = drill.thresholds(GUARANTEE)
    judgement = judge_alerts_fired([a for a in drill.catalog.alerts if a.name in names],
                                   measured,
                                   min_fired_ratio=float(thresholds["min_fired_ratio"]),
                                   max_fire_s=float(thresholds["max_fire_s"]))
    recovery = drill.measurements.get("latency_recovery")
    if recovery is not None and judgement.verdict is not Verdict.VIOLATED:
        judgement.evidence.update({f"latency_recovery.{k}": v for k, v in recovery.items()})
        if recovery["recover_s"] is None:
            judgement = Judgement(
                Verdict.VIOLATED, f"{GUARANTEE}: after the mitigation the cross-cluster "
                f"p{float(recovery['quantile']) * 100:g} stayed over "
                f"{float(recovery['max_ms']):g} ms for the {recovery['recover_waited_s']:.0f} s "
                "waited", judgement.evidence)
    return drill.settle(GUARANTEE, judgement)


def load_exported_activities() -> list[DiscoveredActivities]:
    """This module's activities for ``chaos discover``, each typed action or probe."""
    return typed_activities(__name__, PROBES, NOT_ACTIVITIES)
