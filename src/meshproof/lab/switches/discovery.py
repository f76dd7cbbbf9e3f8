"""``consul-stale``: the catalog sync stops, so Consul keeps endpoints that no longer exist.

To make the stale entries real, the switch then replaces the pods of a service
under test (``kubectl rollout restart`` of helloworld in each cluster): the old
pod addresses stay in Consul, the new ones never arrive.
"""

from __future__ import annotations

from kubernetes import client

from meshproof.errors import LabError
from meshproof.lab.cli import Switch, register_switch
from meshproof.lab.consul.control import SYNC_SELECTOR, set_sync_paused
from meshproof.lab.state import LabPaths
from meshproof.lab.switches.api import CONTEXTS, api, plain
from meshproof.lab.switches.network import restart

__all__ = ["register"]

CHURNED = {"aws-eks": [("sample", "helloworld-v1")], "gcp-gke": [("sample", "helloworld-v2")]}


def _sync_pods(paths: LabPaths, context: str) -> list[str]:
    core = client.CoreV1Api(api(paths, context))
    pods = plain(core.list_namespaced_pod("consul", label_selector=SYNC_SELECTOR))
    ips = [p["status"].get("podIP") for p in pods.get("items") or []
           if (p.get("status") or {}).get("podIP")]
    if not ips:
        raise LabError(f"consul-stale: no catalog-sync pod is running in {context}")
    return ips


def _stale(paths: LabPaths) -> None:
    for context in CONTEXTS:
        for ip in _sync_pods(paths, context):
            set_sync_paused(ip, True)
    for context in CONTEXTS:
        restart(paths, context, CHURNED[context])


def _fresh(paths: LabPaths) -> None:
    for context in CONTEXTS:
        for ip in _sync_pods(paths, context):
            set_sync_paused(ip, False)


def register() -> None:
    register_switch(Switch(
        "consul-stale",
        "the Consul catalog sync stops while helloworld's pods are replaced: Consul keeps "
        "endpoints that no longer exist",
        _stale, _fresh))
