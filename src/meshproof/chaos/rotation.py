"""Chaos Toolkit activities of the certificate-rotation drill (CERT-ROTATION).

Fault ``certificate-rotation``, in the fault cluster, under traffic from another
cluster: the ingress gateway's cert-manager Certificate is renewed the way
``cmctl renew`` does it, and a workload is restarted so that its sidecars ask istiod
for new certificates (the runbook's "Force certificate renewal" and "Restart
affected pods"). Both are the runbook's own remedies and stay, as after the runbook's
commands: a renewed certificate and restarted pods are the healthy state, there is
nothing to put back. Activities, in the order an experiment calls them:
``certificate_ready`` (steady state), ``trust_bundles``, ``renew_certificate``,
``rotate_workload_certificates``, ``trust_bundles`` again, ``certificate_rotation_verdict``.
"""

# No `from __future__ import annotations`: chaoslib reads the annotations at run time
# to give `chaos discover` portable argument types.

import contextlib
import datetime as dt
import hashlib
import json
import math
import time
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, DiscoveredActivities, Secrets
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from meshproof.chaos.discovery import typed_activities
from meshproof.chaos.rotation_judge import (
    GUARANTEE,
    issued_after,
    judge_certificate_rotation,
    parse_time,
)
from meshproof.chaos.state import Drill, drill_for
from meshproof.checks.certs import issuance_failure
from meshproof.checks.handshake import INBOUND_LISTENER
from meshproof.clients.envoy import admin_get
from meshproof.clients.kube import ClusterApi
from meshproof.clients.prometheus import PromQL
from meshproof.errors import MeshproofError
from meshproof.waiting import eventually

__all__ = [
    "certificate_ready",
    "certificate_rotation_verdict",
    "load_exported_activities",
    "renew_certificate",
    "rotate_workload_certificates",
    "trust_bundles",
]

FAULT = "certificate-rotation"
PROBES = ("certificate_ready", "trust_bundles", "certificate_rotation_verdict")
"""The activities that are probes (the others are actions)."""
ROOT_CONFIGMAP = "istio-ca-root-cert"
"""The trust bundle istiod publishes into every namespace (key ``root-cert.pem``)."""
ROOT_KEY = "root-cert.pem"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
SCRAPED = 'up{job="kubernetes-pods"}'
"""Every pod target Prometheus scrapes (the job of Istio's sample Prometheus config)."""
# `cmctl renew` sets this condition through the status subresource and lets the
# controller do the rest (cert-manager/cmctl pkg/renew/renew.go, renewCertificate).
RENEW_REASON = "ManuallyTriggered"
RENEW_MESSAGE = "Certificate re-issuance manually triggered"


def _failed(what: str, exc: MeshproofError) -> ActivityFailed:
    return ActivityFailed(f"{what}: {exc}")


def _certificate_path(namespace: str, name: str) -> str:
    return f"/apis/cert-manager.io/v1/namespaces/{namespace}/certificates/{name}"


def _condition(cert: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (cert.get("status") or {}).get("conditions") or []
                 if c.get("type") == kind), {})


def _fault_start(drill: Drill, cluster: str, description: str) -> float:
    """The drill's fault start: the first fault activity marks it."""
    if "fault-start" in drill.moments:
        drill.note("fault", description, cluster=cluster)
        return drill.moments["fault-start"]
    return drill.mark("fault-start", "fault-start", description, cluster=cluster)


def certificate_ready(cluster: str, namespace: str, name: str,
                      configuration: Configuration = None, secrets: Secrets = None) -> bool:
    """Whether cert-manager Certificate ``namespace/name`` in ``cluster`` is Ready."""
    drill = drill_for(configuration)
    api = drill.connections.api(drill.cluster(cluster))
    try:
        cert = api.get(_certificate_path(namespace, name))
    except MeshproofError as exc:
        raise _failed(f"reading certificate {namespace}/{name} on {cluster}", exc) from exc
    return _condition(cert, "Ready").get("status") == "True"


def _fingerprints(pem: str) -> list[str]:
    """SHA-256 fingerprints of the certificates of a PEM bundle."""
    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        return []
    return sorted(hashlib.sha256(c.public_bytes(Encoding.DER)).hexdigest() for c in certs)


def trust_bundles(namespace: str = "istio-system", configuration: Configuration = None,
                  secrets: Secrets = None) -> dict[str, Any]:
    """The roots of ConfigMap ``istio-ca-root-cert`` (``root-cert.pem``) in ``namespace`` of
    every cluster, as SHA-256 fingerprints; read before the drill's fault (moment
    ``before``) or after it (``after``)."""
    drill = drill_for(configuration)
    moment = "after" if "fault-start" in drill.moments else "before"
    readings: list[dict[str, Any]] = drill.measurements.setdefault("trust_bundles", [])
    found: dict[str, list[str]] = {}
    for cluster, api in drill.connections.apis.items():
        try:
            data = api.get(f"/api/v1/namespaces/{namespace}/configmaps/{ROOT_CONFIGMAP}")
        except MeshproofError as exc:
            raise _failed(f"reading {namespace}/{ROOT_CONFIGMAP} on {cluster}", exc) from exc
        found[cluster] = _fingerprints(str((data.get("data") or {}).get(ROOT_KEY) or ""))
        readings.append({"moment": moment, "cluster": cluster, "roots": found[cluster]})
    drill.note("verification", f"trust bundles {moment}: " + "; ".join(
        f"{c} {','.join(r[:12] for r in roots) or 'none'}" for c, roots in found.items()))
    return {"moment": moment, "roots": found}


def renew_certificate(cluster: str, namespace: str, name: str,
                      configuration: Configuration = None,
                      secrets: Secrets = None) -> dict[str, Any]:
    """Fault ``certificate-rotation`` (renewal): ask cert-manager to re-issue Certificate
    ``namespace/name`` in ``cluster`` as ``cmctl renew`` does (status condition Issuing=True,
    reason ManuallyTriggered), then wait (the cert renewal timeout) until a new revision is
    issued or the issuance fails."""
    drill = drill_for(configuration)
    drill.allow(cluster, FAULT)
    api = drill.connections.api(cluster)
    path = _certificate_path(namespace, name)
    timeouts = drill.target.resolved_timeouts
    try:
        before = api.get(path)
    except MeshproofError as exc:
        raise _failed(f"reading certificate {namespace}/{name} on {cluster}", exc) from exc
    revision = int((before.get("status") or {}).get("revision") or 0)
    generation = int(before["metadata"].get("generation") or 1)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = [c for c in (before.get("status") or {}).get("conditions") or []
                  if c.get("type") != "Issuing"]
    conditions.append({"type": "Issuing", "status": "True", "reason": RENEW_REASON,
                       "message": RENEW_MESSAGE, "lastTransitionTime": stamp,
                       "observedGeneration": generation})
    start = _fault_start(drill, cluster, f"renewal of certificate {namespace}/{name} "
                         "triggered (cmctl renew)")
    try:
        api.merge_patch(f"{path}/status", {"status": {"conditions": conditions}})
    except MeshproofError as exc:
        raise _failed(f"triggering the renewal of {namespace}/{name} on {cluster}", exc) from exc
    last: dict[str, Any] = {}

    def renewed() -> dict[str, Any]:
        cert = api.get(path)
        last.update(cert)
        issuing = _condition(cert, "Issuing")
        if issuance_failure(cert) is not None:
            return cert
        assert int((cert.get("status") or {}).get("revision") or 0) > revision, \
            f"revision still {revision}"
        assert issuing.get("status") != "True", "still issuing"
        return cert

    done: float | None = None
    try:
        cert = eventually(renewed, timeout=timeouts.cert_renewal,
                          interval=timeouts.poll_interval,
                          what=f"renewal of certificate {namespace}/{name} on {cluster}")
        status = cert.get("status") or {}
        if int(status.get("revision") or 0) > revision:
            done = time.time()
    except MeshproofError:
        status = last.get("status") or {}
    failure = issuance_failure(last)
    result = {"certificate": f"{namespace}/{name}", "cluster": cluster,
              "renew_s": None if done is None else round(done - start, 3),
              "waited_s": round(time.time() - start, 3), "revision_before": revision,
              "revision": status.get("revision"), "not_before": status.get("notBefore"),
              "failure": f"{failure[0]}: {failure[1]}" if failure else None}
    if done is not None:
        drill.mark("renewed", "recovery", f"certificate {namespace}/{name} renewed "
                   f"(revision {result['revision']}, notBefore {result['not_before']}) "
                   f"{done - start:.1f} s after the trigger", cluster=cluster, at=done)
    else:
        drill.note("recovery", f"certificate {namespace}/{name} not renewed: "
                   f"{result['failure'] or 'no new revision'}", cluster=cluster)
    drill.measurements["renewal"] = result
    return result


def _deployments(api: ClusterApi, namespace: str, selector: str) -> list[dict[str, Any]]:
    listed = api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments",
                     labelSelector=selector)
    return list(listed.get("items") or [])


def _pods(api: ClusterApi, namespace: str, selector: str) -> list[dict[str, Any]]:
    listed = api.get(f"/api/v1/namespaces/{namespace}/pods", labelSelector=selector)
    return [p for p in listed.get("items") or []
            if not p["metadata"].get("deletionTimestamp")
            and (p.get("status") or {}).get("phase") == "Running"]


def _leaf_times(api: ClusterApi, namespace: str, pod: str) -> tuple[float | None, float | None]:
    """(valid_from, expiration) of the workload certificate in the sidecar's ``/certs``."""
    doc = json.loads(admin_get(api, namespace, pod, "certs") or "{}")
    chains = [entry for c in doc.get("certificates") or [] for entry in c.get("cert_chain") or []]
    starts = [t for t in (parse_time(e.get("valid_from")) for e in chains) if t is not None]
    ends = [t for t in (parse_time(e.get("expiration_time")) for e in chains) if t is not None]
    return (max(starts) if starts else None), (max(ends) if ends else None)


def _rolled_out(deployment: dict[str, Any]) -> None:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    name = deployment["metadata"]["name"]
    assert status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0), \
        f"{name}: the restart is not observed yet"
    assert int(status.get("updatedReplicas") or 0) >= wanted, f"{name}: replicas not updated"
    assert int(status.get("availableReplicas") or 0) >= wanted, f"{name}: not available"
    assert not status.get("unavailableReplicas"), f"{name}: replicas unavailable"


def rotate_workload_certificates(cluster: str, namespace: str, selector: str,
                                 configuration: Configuration = None,
                                 secrets: Secrets = None) -> dict[str, Any]:
    """Fault ``certificate-rotation`` (workloads): ``kubectl rollout restart`` every
    Deployment of ``namespace`` in ``cluster`` matching label ``selector``, wait for the
    rollout, then read each new sidecar's certificate (Envoy admin ``/certs``): rotated when
    issued after the fault began. Ends the fault window."""
    drill = drill_for(configuration)
    drill.allow(cluster, FAULT)
    api = drill.connections.api(cluster)
    timeouts = drill.target.resolved_timeouts
    try:
        deployments = _deployments(api, namespace, selector)
        if not deployments:
            raise ActivityFailed(f"no Deployment matches {selector!r} in {namespace} on "
                                 f"{cluster}: nothing to rotate")
        old = _pods(api, namespace, selector)
        expiries = [e for e in (_leaf_times(api, namespace, p["metadata"]["name"])[1]
                                for p in old) if e is not None]
        start = _fault_start(drill, cluster, f"rollout restart of {len(deployments)} "
                             f"deployment(s) {selector} in {namespace}")
        stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        paths = [f"/apis/apps/v1/namespaces/{namespace}/deployments/{d['metadata']['name']}"
                 for d in deployments]
        for path in paths:
            api.merge_patch(path, {"spec": {"template": {"metadata": {
                "annotations": {RESTARTED_AT: stamp}}}}})

        def rolled_out() -> None:
            for path in paths:
                _rolled_out(api.get(path))
            assert not {p["metadata"]["uid"] for p in old} & {
                p["metadata"]["uid"] for p in _pods(api, namespace, selector)}, \
                "old pods still running"

        eventually(rolled_out, timeout=timeouts.rollout, interval=timeouts.poll_interval,
                   what=f"rollout restart of {selector} in {namespace} on {cluster}")
        drill.mark("fault-end", "fault-end", f"{selector} in {namespace} restarted and rolled "
                   "out", cluster=cluster)
        pods = _pods(api, namespace, selector)
        stale: list[str] = []
        for pod in pods:
            valid_from, expires = _leaf_times(api, namespace, pod["metadata"]["name"])
            if not issued_after(valid_from, expires, start=start, expiries_before=expiries):
                stale.append(pod["metadata"]["name"])
    except MeshproofError as exc:
        raise _failed(f"rotating the certificates of {selector} in {namespace} on {cluster}",
                      exc) from exc
    result = {"workload": f"{namespace}/{selector}", "cluster": cluster, "pods": len(pods),
              "rotated": len(pods) - len(stale), "stale": stale}
    drill.note("recovery", f"{result['rotated']} of {len(pods)} restarted sidecars hold a "
               "certificate issued after the fault began", cluster=cluster)
    drill.measurements["rotation"] = result
    return result


def counted_since(metric: str, window_s: int) -> tuple[str, str]:
    """Two PromQL sums that together count a counter's events of the last ``window_s``:
    the increase of the series that existed when the window began, and the whole value of
    those that appeared within it (a pod started during the fault, or a counter a proxy
    creates on its first event), whose every event lies inside the window."""
    old = f"sum(increase({metric}[{window_s}s]) and {metric} offset {window_s}s)"
    new = f"sum(max_over_time({metric}[{window_s}s]) unless {metric} offset {window_s}s)"
    return old, new


def _count(prom: PromQL, metric: str, window_s: int) -> float:
    return sum(prom.scalar(q) or 0.0 for q in counted_since(metric, window_s))


def _handshakes(drill: Drill, start: float) -> tuple[dict[str, float | None], dict[str, float]]:
    """Failed and completed inbound handshakes per cluster since ``start`` (None: the
    cluster has no such series), once its Prometheus has scraped every pod target after
    now (up to the scrape settle time; what was scraped by then is judged)."""
    timeouts = drill.target.resolved_timeouts
    selector = f'{{listener_address="{INBOUND_LISTENER}"}}'
    now = time.time()
    errors: dict[str, float | None] = {}
    handshakes: dict[str, float] = {}
    for cluster in drill.target.cluster_names:
        prom = drill.connections.prometheus.get(cluster)
        if prom is None:
            raise ActivityFailed(f"cluster {cluster} has no Prometheus in target "
                                 f"{drill.target.name!r}; set clusters[].prometheus")

        def scraped(prom: PromQL = prom) -> None:
            oldest = prom.scalar(f"min(timestamp({SCRAPED}))")
            assert oldest is not None and oldest >= now, "Prometheus has not scraped since"

        with contextlib.suppress(MeshproofError):
            eventually(scraped, timeout=timeouts.scrape_settle, interval=timeouts.poll_interval,
                       what=f"a scrape of every pod on {cluster}")
        window = max(1, math.ceil(time.time() - start))
        if not prom.instant(f"count(last_over_time(envoy_listener_ssl_handshake{selector}"
                            f"[{window}s]))"):
            errors[cluster], handshakes[cluster] = None, 0.0
            continue
        errors[cluster] = _count(prom, f"envoy_listener_ssl_connection_error{selector}", window)
        handshakes[cluster] = _count(prom, f"envoy_listener_ssl_handshake{selector}", window)
    return errors, handshakes


def certificate_rotation_verdict(configuration: Configuration = None,
                                 secrets: Secrets = None) -> dict[str, Any]:
    """CERT-ROTATION's verdict: no failed mTLS handshake in any cluster since the fault
    began (Envoy ``listener.<inbound>.ssl.connection_error`` through Prometheus), the renewal
    done in time after the fault began, every restarted sidecar rotated, one trust bundle
    before and after; fails unless it held."""
    drill = drill_for(configuration)
    start = drill.moments.get("fault-start")
    if start is None:
        raise ActivityFailed(f"{GUARANTEE}: no fault was applied, nothing to judge")
    try:
        errors, handshakes = _handshakes(drill, start)
    except MeshproofError as exc:
        raise _failed("reading the handshake counters", exc) from exc
    measured = {"start": start, "handshake_errors": errors, "handshakes": handshakes,
                "renewal": drill.measurements.get("renewal") or {},
                "rotation": drill.measurements.get("rotation") or {},
                "bundles": drill.measurements.get("trust_bundles") or []}
    judgement = judge_certificate_rotation(measured, drill.thresholds(GUARANTEE))
    return drill.settle(GUARANTEE, judgement)


def load_exported_activities() -> list[DiscoveredActivities]:
    """This module's activities for ``chaos discover``, each typed action or probe."""
    return typed_activities(__name__, PROBES)
