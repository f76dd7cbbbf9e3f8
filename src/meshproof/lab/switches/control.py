"""Switches that break the control plane and the gateways: istiod, the east-west
gateways, the remote secrets and the proxies' own health.

- ``istiod-flapping`` and ``eastwest-gateway-flapping`` give a Deployment a
  liveness probe on a port its container does not serve (a probe copied from
  another component's manifest): the kubelet kills the container every few
  seconds and restarts it with CrashLoopBackOff, so Prometheus' scrapes of it
  fail in between while the data plane keeps its last config.
- ``remote-secret-missing`` deletes one cluster's remote secret for the other,
  so that cluster's istiod stops watching it.
- ``proxy-bloat`` makes one sidecar leak memory it really holds.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from meshproof.errors import LabError
from meshproof.lab.cli import Switch, register_switch
from meshproof.lab.sidecar.program import LEAK_BYTES, LEAK_FLAG
from meshproof.lab.state import LabPaths
from meshproof.lab.switches.api import api, forget, load, plain, save
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually

__all__ = ["BREAKS", "CASCADES", "register"]

BREAKS: dict[str, frozenset[str]] = {
    "istiod-flapping": frozenset({"CP-AVAIL"}),
    "eastwest-gateway-flapping": frozenset({"GW-AVAIL"}),
    "remote-secret-missing": frozenset({"MULTICLUSTER-SYNC"}),
    # The runbook's P2 "High Envoy memory usage" alert fires too: the memory stays held.
    "proxy-bloat": frozenset({"ENVOY-MEMORY", "ALERTS-QUIET"}),
}
"""Which guarantees each switch of this module must violate (and no other)."""

CASCADES: dict[str, frozenset[str]] = {
    # The runbook's P0 "Istiod control plane down" alert fires when its instant query
    # falls into one of istiod's down phases; a proxy-status read in a down phase, or
    # right after a restart before the proxies reconnected, finds proxies not connected.
    "istiod-flapping": frozenset({"ALERTS-QUIET", "PROXY-HEALTH"}),
    # The runbook's P0 "East-west gateway down" alert fires when its instant query falls
    # into one of the gateway's down phases. The gateway passes TLS through: a handshake
    # crossing it when it is killed ends as a failed handshake at the server's sidecar.
    # Cross-cluster requests that pick an endpoint behind it while it is down are retried
    # (Envoy's retry back-off), and after each restart every connection through it is new:
    # its mutual TLS handshake crosses the WAN first (two more round trips), so the
    # cross-cluster p95 rises over the bound (the CrossClusterLatencyHigh alert fires too).
    "eastwest-gateway-flapping": frozenset({"ALERTS-QUIET", "MTLS-HANDSHAKE", "XC-LATENCY"}),
    # An istiod that no longer watches the other cluster gives its sidecars none of that
    # cluster's endpoints, so they lack the remote gateway the other cluster's services need.
    "remote-secret-missing": frozenset({"DISCOVERY"}),
}
"""Guarantees a switch of this module may also violate, because their traffic passes
through its fault."""

ISTIO_SYSTEM = "istio-system"
REMOTE_SECRET_LABEL = "istio/multiCluster=true"
MEMORY_SERIES = re.compile(r"^envoy_server_memory_allocated(?:\{[^}]*\})? (\S+)$", re.M)


@dataclass(frozen=True, slots=True)
class Flapping:
    """A Deployment whose container gets a liveness probe it cannot pass."""

    switch: str
    cluster: str
    deployment: str
    container: str
    probe: dict[str, Any]
    """Failing from its first try, 3 s after each start, with a 2 s grace for SIGTERM (the
    probe's own ``terminationGracePeriodSeconds``, the kubelet's minimum): each run ends
    within about 5 s, well inside the lab kubelet's 10 s back-off reset even on a loaded
    machine, so the back-off grows to its 5 s cap and every down phase outlasts a scrape
    interval. Without the probe's grace the pod's applied: a component that drains on
    SIGTERM (istiod closing its xDS streams) ran until the 5 s SIGKILL, crossed the 10 s,
    and the back-off fell back to 0.5 s, too short for 5 s scrapes to see it down."""


FLAPPING = (
    # The sidecar's readiness endpoint: istiod has no listener on 15021.
    Flapping("istiod-flapping", "aws-eks", "istiod", "discovery",
             {"httpGet": {"path": "/healthz/ready", "port": 15021},
              "initialDelaySeconds": 3, "periodSeconds": 2, "failureThreshold": 1,
              "terminationGracePeriodSeconds": 2}),
    # istiod's readiness endpoint: a gateway has no listener on 8080.
    Flapping("eastwest-gateway-flapping", "gcp-gke", "istio-eastwestgateway", "istio-proxy",
             {"httpGet": {"path": "/ready", "port": 8080},
              "initialDelaySeconds": 3, "periodSeconds": 2, "failureThreshold": 1,
              "terminationGracePeriodSeconds": 2}),
)
REMOTE_SECRET_HOLDER, REMOTE_SECRET_FOR = "aws-eks", "gcp-gke"
"""The cluster that loses its remote secret, and the cluster the secret gave access to."""
BLOATED = ("gcp-gke", "sample", "app=helloworld,version=v2")
"""Cluster, namespace and label selector of the pod whose sidecar leaks."""


def _wait(check: Callable[[], None], what: str, timeout: float) -> None:
    eventually(check, timeout=timeout, interval=DEFAULT_TIMEOUTS.poll_interval, what=what)


# -- a container's liveness probe ------------------------------------------------------------


def _containers(apps: client.AppsV1Api, flap: Flapping) -> list[dict[str, Any]]:
    deployment = plain(apps.read_namespaced_deployment(flap.deployment, ISTIO_SYSTEM))
    return list(deployment["spec"]["template"]["spec"]["containers"])


def _set_liveness(apps: client.AppsV1Api, flap: Flapping, probe: dict[str, Any] | None) -> None:
    containers = _containers(apps, flap)
    index = next((i for i, c in enumerate(containers) if c["name"] == flap.container), None)
    if index is None:
        raise LabError(f"{flap.switch}: Deployment {ISTIO_SYSTEM}/{flap.deployment} on "
                       f"{flap.cluster} has no container {flap.container}")
    path = f"/spec/template/spec/containers/{index}/livenessProbe"
    if probe is not None:
        ops = [{"op": "add", "path": path, "value": probe}]
    elif "livenessProbe" in containers[index]:
        ops = [{"op": "remove", "path": path}]
    else:
        return
    apps.patch_namespaced_deployment(flap.deployment, ISTIO_SYSTEM, ops)


def _pods(core: client.CoreV1Api, flap: Flapping) -> tuple[list[dict[str, Any]], int]:
    """The Deployment's pods (terminating ones included) and how many are terminating."""
    apps = client.AppsV1Api(core.api_client)
    deployment = plain(apps.read_namespaced_deployment(flap.deployment, ISTIO_SYSTEM))
    selector = ",".join(f"{k}={v}" for k, v in
                        deployment["spec"]["selector"]["matchLabels"].items())
    pods = plain(core.list_namespaced_pod(ISTIO_SYSTEM, label_selector=selector))["items"]
    return pods, sum(1 for p in pods if p["metadata"].get("deletionTimestamp"))


def _container_of(pod: dict[str, Any], flap: Flapping) -> tuple[dict[str, Any], dict[str, Any]]:
    """The container's spec and status in ``pod``."""
    spec = next(c for c in pod["spec"]["containers"] if c["name"] == flap.container)
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    status: dict[str, Any] = next((c for c in statuses if c["name"] == flap.container), {})
    return spec, status


def _probe_port(probe: dict[str, Any] | None) -> Any:
    """What tells two liveness probes apart here (the API server defaults the other fields)."""
    return None if probe is None else (probe.get("httpGet") or {}).get("port")


def _flap(flap: Flapping) -> Callable[[LabPaths], None]:
    def apply(paths: LabPaths) -> None:
        core = client.CoreV1Api(api(paths, flap.cluster))
        apps = client.AppsV1Api(core.api_client)
        current = next(c for c in _containers(apps, flap) if c["name"] == flap.container)
        save(paths, flap.switch, {"livenessProbe": current.get("livenessProbe")})
        _set_liveness(apps, flap, copy.deepcopy(flap.probe))

        def flapping() -> None:
            pods, terminating = _pods(core, flap)
            assert not terminating, f"{terminating} old pods still terminating"
            for pod in pods:
                spec, status = _container_of(pod, flap)
                assert _probe_port(spec.get("livenessProbe")) == _probe_port(flap.probe), (
                    "rollout not done")
                assert status.get("restartCount", 0) >= 2, "not restarted twice yet"

        _wait(flapping, f"{flap.switch}: {flap.deployment} on {flap.cluster} crash-looping",
              DEFAULT_TIMEOUTS.rollout)

    return apply


def _steady(flap: Flapping) -> Callable[[LabPaths], None]:
    def revert(paths: LabPaths) -> None:
        saved = load(paths, flap.switch)
        if saved is None:
            return
        core = client.CoreV1Api(api(paths, flap.cluster))
        _set_liveness(client.AppsV1Api(core.api_client), flap, saved["livenessProbe"])

        def steady() -> None:
            pods, terminating = _pods(core, flap)
            assert pods and not terminating, "old pods still there"
            for pod in pods:
                spec, status = _container_of(pod, flap)
                assert _probe_port(spec.get("livenessProbe")) == _probe_port(
                    saved["livenessProbe"]), "rollout not done"
                assert status.get("ready"), f"{pod['metadata']['name']} not Ready"

        _wait(steady, f"{flap.switch}: {flap.deployment} on {flap.cluster} back to Ready",
              DEFAULT_TIMEOUTS.rollout)
        forget(paths, flap.switch)

    return revert


# -- remote secrets ---------------------------------------------------------------------------


def _remote_clusters(core: client.CoreV1Api) -> float:
    """``istiod_managed_clusters{cluster_type="remote"}`` as istiod's own metrics show it."""
    pods = plain(core.list_namespaced_pod(ISTIO_SYSTEM, label_selector="app=istiod"))["items"]
    running = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert running, "no istiod pod"
    text = core.connect_get_namespaced_pod_proxy_with_path(
        f"{running[0]['metadata']['name']}:15014", ISTIO_SYSTEM, "metrics")
    found = re.search(r'^istiod_managed_clusters\{cluster_type="remote"\} (\S+)$', text, re.M)
    assert found, "istiod exports no istiod_managed_clusters"
    return float(found.group(1))


def _wait_remote_clusters(core: client.CoreV1Api, expected: float, what: str) -> None:
    def check() -> None:
        try:
            managed = _remote_clusters(core)
        except ApiException as exc:
            raise AssertionError(f"istiod metrics: {exc.status} {exc.reason}") from exc
        assert managed == expected, f"istiod manages {managed:g} remote clusters"

    _wait(check, what, DEFAULT_TIMEOUTS.config_propagation)


def _delete_remote_secret(paths: LabPaths) -> None:
    core = client.CoreV1Api(api(paths, REMOTE_SECRET_HOLDER))
    secrets = plain(core.list_namespaced_secret(ISTIO_SYSTEM,
                                                label_selector=REMOTE_SECRET_LABEL))["items"]
    found = [s for s in secrets if REMOTE_SECRET_FOR in (s.get("data") or {})]
    if not found and load(paths, "remote-secret-missing") is None:
        raise LabError(f"remote-secret-missing: {REMOTE_SECRET_HOLDER} has no remote secret "
                       f"for {REMOTE_SECRET_FOR}")
    kept = [{"metadata": {k: v for k, v in s["metadata"].items()
                          if k in ("name", "namespace", "labels", "annotations")},
             "type": s.get("type", "Opaque"), "data": s["data"]} for s in found]
    save(paths, "remote-secret-missing", kept)
    before = _remote_clusters(core)
    for secret in found:
        core.delete_namespaced_secret(secret["metadata"]["name"], ISTIO_SYSTEM)
    _wait_remote_clusters(core, before - 1 if found else before,
                          f"remote-secret-missing: {REMOTE_SECRET_HOLDER}'s istiod letting "
                          f"{REMOTE_SECRET_FOR} go")


def _restore_remote_secret(paths: LabPaths) -> None:
    saved = load(paths, "remote-secret-missing")
    if saved is None:
        return
    core = client.CoreV1Api(api(paths, REMOTE_SECRET_HOLDER))
    before = _remote_clusters(core)
    for secret in saved:
        try:
            body: Any = {"apiVersion": "v1", "kind": "Secret", **secret}
            core.create_namespaced_secret(ISTIO_SYSTEM, body)
        except ApiException as exc:
            if exc.status != 409:
                raise LabError(f"remote-secret-missing: restoring "
                               f"{secret['metadata']['name']} on {REMOTE_SECRET_HOLDER}: "
                               f"{exc.status} {exc.reason}") from exc
    _wait_remote_clusters(core, before + len(saved), f"remote-secret-missing: "
                          f"{REMOTE_SECRET_HOLDER}'s istiod watching {REMOTE_SECRET_FOR} again")
    forget(paths, "remote-secret-missing")


# -- a leaking sidecar ------------------------------------------------------------------------


def _bloated_pod(core: client.CoreV1Api) -> str:
    cluster, namespace, selector = BLOATED
    pods = [p for p in plain(core.list_namespaced_pod(namespace, label_selector=selector))["items"]
            if not p["metadata"].get("deletionTimestamp")]
    if not pods:
        raise LabError(f"proxy-bloat: no pod {selector} in {namespace} on {cluster}")
    return str(pods[0]["metadata"]["name"])


def _allocated(core: client.CoreV1Api, pod: str) -> float:
    """The sidecar's ``envoy_server_memory_allocated``, from its merged metrics on 15020."""
    text = core.connect_get_namespaced_pod_proxy_with_path(f"{pod}:15020", BLOATED[1],
                                                           "stats/prometheus")
    found = MEMORY_SERIES.search(text)
    assert found, f"{pod} exports no envoy_server_memory_allocated"
    return float(found.group(1))


def _leak(paths: LabPaths) -> None:
    cluster, namespace, _ = BLOATED
    core = client.CoreV1Api(api(paths, cluster))
    pod = _bloated_pod(core)
    pod_dir = paths.root / "pods" / cluster / namespace / pod
    pod_dir.mkdir(parents=True, exist_ok=True)
    (pod_dir / LEAK_FLAG).write_text("this proxy leaks memory\n")

    def bloated() -> None:
        held = _allocated(core, pod)
        assert held >= LEAK_BYTES, f"{pod}'s proxy holds {held / 2**20:.0f} MiB"

    _wait(bloated, f"proxy-bloat: {pod}'s sidecar holding {LEAK_BYTES >> 20} MiB",
          DEFAULT_TIMEOUTS.config_propagation)


def _release(paths: LabPaths) -> None:
    flags = list((paths.root / "pods").glob(f"*/*/*/{LEAK_FLAG}"))
    for flag in flags:
        flag.unlink(missing_ok=True)
    for flag in flags:
        cluster, namespace, pod = flag.parent.parts[-3:]
        core = client.CoreV1Api(api(paths, cluster))
        try:
            core.read_namespaced_pod(pod, namespace)
        except ApiException:
            continue  # the pod is gone, and its memory with it

        def released(core: client.CoreV1Api = core, pod: str = pod) -> None:
            held = _allocated(core, pod)
            assert held < LEAK_BYTES, f"{pod}'s proxy still holds {held / 2**20:.0f} MiB"

        _wait(released, f"proxy-bloat: {pod}'s sidecar releasing its leak",
              DEFAULT_TIMEOUTS.config_propagation)


def register() -> None:
    """Register this module's switches with the lab CLI."""
    for flap in FLAPPING:
        register_switch(Switch(
            flap.switch,
            f"{flap.deployment} on {flap.cluster} gets a liveness probe on a port it does not "
            "serve: the kubelet kills it every few seconds (CrashLoopBackOff)",
            _flap(flap), _steady(flap)))
    register_switch(Switch(
        "remote-secret-missing",
        f"{REMOTE_SECRET_HOLDER} loses its remote secret for {REMOTE_SECRET_FOR}: its istiod "
        f"no longer watches {REMOTE_SECRET_FOR}",
        _delete_remote_secret, _restore_remote_secret))
    register_switch(Switch(
        "proxy-bloat",
        f"the sidecar of helloworld v2 ({BLOATED[0]}) leaks until it holds "
        f"{LEAK_BYTES >> 20} MiB",
        _leak, _release))
