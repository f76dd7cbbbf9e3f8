"""Switches below the mesh's config: a slow WAN, a stuck config stream, a foreign CA."""

from __future__ import annotations

import base64
import datetime
import json
import tempfile
from pathlib import Path

from kubernetes import client

from meshproof import pki
from meshproof.errors import LabError
from meshproof.lab.cli import Switch, register_switch
from meshproof.lab.state import LabPaths
from meshproof.lab.switches.api import api, forget, load, plain, save
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually

__all__ = ["NETWORK_FILE", "SLOW_WAN_ONE_WAY_MS", "STALE_FLAG", "register", "restart",
           "restart_mesh"]

NETWORK_FILE = "network.json"
"""In the lab directory: the WAN between the clusters, read by the east-west gateways."""
STALE_FLAG = "proxy-stale"
"""In a pod directory: that pod's proxy stops taking config from istiod."""
SLOW_WAN_ONE_WAY_MS = (70.0, 90.0)
"""Each direction; with two gateway crossings per request the round trip alone passes 100 ms."""
FOREIGN_CLUSTER = "gcp-gke"
RESTARTED = ("istio-system", "sample", "production")
ISTIOD = ("istio-system", "istiod")


def _slow_wan(paths: LabPaths) -> None:
    low, high = SLOW_WAN_ONE_WAY_MS
    (paths.root / NETWORK_FILE).write_text(json.dumps({"wan_one_way_ms": [low, high]}))


def _fast_wan(paths: LabPaths) -> None:
    (paths.root / NETWORK_FILE).unlink(missing_ok=True)


def _stale_on(paths: LabPaths) -> None:
    core = client.CoreV1Api(api(paths, "aws-eks"))
    pods = plain(core.list_namespaced_pod("sample", label_selector="app=helloworld,version=v1"))
    if not pods.get("items"):
        raise LabError("proxy-stale: no helloworld v1 pod in sample on aws-eks to break")
    pod_dir = paths.root / "pods" / "aws-eks" / "sample" / pods["items"][0]["metadata"]["name"]
    pod_dir.mkdir(parents=True, exist_ok=True)
    (pod_dir / STALE_FLAG).write_text("the xDS stream of this proxy is stuck\n")
    # A live mesh keeps changing; the stuck proxy misses the next change. Endpoint churn
    # of a local service is the most common one.
    restart(paths, "aws-eks", [("production", "catalog-v1")])


def _stale_off(paths: LabPaths) -> None:
    for flag in (paths.root / "pods").glob(f"*/*/*/{STALE_FLAG}"):
        flag.unlink(missing_ok=True)


def restart_mesh(paths: LabPaths, context: str) -> None:
    """``kubectl rollout restart`` of istiod, then of every other Deployment that holds a
    workload certificate: the new pods ask the restarted istiod for their certificates."""
    apps = client.AppsV1Api(api(paths, context))
    names = [(namespace, d["metadata"]["name"]) for namespace in RESTARTED
             for d in plain(apps.list_namespaced_deployment(namespace)).get("items") or []]
    restart(paths, context, [n for n in names if n == ISTIOD])
    restart(paths, context, [n for n in names if n != ISTIOD])


def restart(paths: LabPaths, context: str, names: list[tuple[str, str]]) -> None:
    """``kubectl rollout restart`` of ``names`` (namespace, deployment), then ``rollout status``."""
    apps = client.AppsV1Api(api(paths, context))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": stamp}}}}}
    for namespace, name in names:
        apps.patch_namespaced_deployment(name, namespace, patch)

    def rolled_out() -> None:
        for namespace, name in names:
            d = plain(apps.read_namespaced_deployment(name, namespace))
            status, wanted = d.get("status") or {}, d["spec"].get("replicas", 1)
            assert status.get("observedGeneration", 0) >= d["metadata"]["generation"], name
            assert status.get("updatedReplicas", 0) == wanted, name
            assert status.get("availableReplicas", 0) == wanted, name
            assert not status.get("unavailableReplicas"), name

    eventually(rolled_out, timeout=DEFAULT_TIMEOUTS.rollout,
               interval=DEFAULT_TIMEOUTS.poll_interval,
               what=f"rollout restart of the mesh in {context}")


def _foreign_ca(paths: LabPaths) -> None:
    core = client.CoreV1Api(api(paths, FOREIGN_CLUSTER))
    current = plain(core.read_namespaced_secret("cacerts", "istio-system"))
    save(paths, "trust-domain-mismatch", dict(current.get("data") or {}))
    with tempfile.TemporaryDirectory() as tmp:
        root = pki.write_plugin_ca(Path(tmp), [FOREIGN_CLUSTER])
        intermediate = pki.load_cert_key(Path(tmp, FOREIGN_CLUSTER, "ca-cert.pem"),
                                         Path(tmp, FOREIGN_CLUSTER, "ca-key.pem"))
        data = pki.cacerts_secret_data(root, pki.CertKey(intermediate.cert, intermediate.key,
                                                         (root.cert,)))
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    core.patch_namespaced_secret("cacerts", "istio-system", {"data": encoded})
    restart_mesh(paths, FOREIGN_CLUSTER)


def _own_ca(paths: LabPaths) -> None:
    saved = load(paths, "trust-domain-mismatch")
    if saved is None:
        return
    core = client.CoreV1Api(api(paths, FOREIGN_CLUSTER))
    core.patch_namespaced_secret("cacerts", "istio-system", {"data": saved})
    restart_mesh(paths, FOREIGN_CLUSTER)
    forget(paths, "trust-domain-mismatch")


def register() -> None:
    register_switch(Switch(
        "slow-wan",
        f"the WAN between the clusters slows to {SLOW_WAN_ONE_WAY_MS[0]:g}-"
        f"{SLOW_WAN_ONE_WAY_MS[1]:g} ms each way, pushing cross-cluster p95 over 100 ms",
        _slow_wan, _fast_wan))
    register_switch(Switch(
        "proxy-stale",
        "the sidecar of helloworld v1 (aws-eks) stops taking config from istiod, and misses "
        "the endpoint change of a catalog rollout",
        _stale_on, _stale_off))
    register_switch(Switch(
        "trust-domain-mismatch",
        "gcp-gke's istiod signs with an intermediate of a foreign root; its workloads "
        "restart with certificates aws-eks does not trust",
        _foreign_ca, _own_ca))
