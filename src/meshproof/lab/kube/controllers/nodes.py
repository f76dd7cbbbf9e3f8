"""The one Node of a lab cluster, kept Ready by a heartbeat (what the kubelet posts).

Like the kubelet, it renews the node's Lease in ``kube-node-lease`` every 10 s and
refreshes the Node's conditions every 20 s (``pkg/kubelet/nodelease``, ``nodestatus``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import platform
import uuid
from typing import Any

from meshproof.lab.kube.controllers.base import now_rfc3339
from meshproof.lab.kube.interfaces import AlreadyExists, NotFound, ObjectStore

__all__ = ["NodeHeartbeat", "node_object"]

log = logging.getLogger(__name__)
Obj = dict[str, Any]
HEARTBEAT = 20.0
LEASE_RENEW = 10.0
LEASE_SECONDS = 40


def node_object(name: str, *, region: str, zone: str, ip: str, pod_cidr: str,
                kubelet_version: str) -> Obj:
    labels = {
        "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64", "kubernetes.io/os": "linux",
        "kubernetes.io/hostname": name, "node-role.kubernetes.io/control-plane": "",
        "node.kubernetes.io/instance-type": "lab",
        "topology.kubernetes.io/region": region, "topology.kubernetes.io/zone": zone,
    }
    resources = {"cpu": "8", "memory": "16Gi", "pods": "110", "ephemeral-storage": "100Gi",
                 "hugepages-2Mi": "0"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels,
                     "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr], "providerID": f"lab://{name}"},
        "status": {
            "capacity": resources, "allocatable": dict(resources),
            "conditions": _conditions({}),
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64", "operatingSystem": "linux",
                "osImage": "meshproof lab", "kernelVersion": platform.release(),
                "containerRuntimeVersion": "lab://0.1.0", "kubeletVersion": kubelet_version,
                "kubeProxyVersion": kubelet_version, "machineID": uuid.uuid4().hex,
                "systemUUID": str(uuid.uuid4()), "bootID": str(uuid.uuid4()),
            },
        },
    }


def _conditions(previous: Obj) -> list[Obj]:
    now = now_rfc3339()
    out = []
    for type_, status, reason, message in (
        ("MemoryPressure", "False", "KubeletHasSufficientMemory",
         "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ):
        prev = previous.get(type_) or {}
        out.append({"type": type_, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": prev.get("lastTransitionTime", now)
                    if prev.get("status") == status else now})
    return out


class NodeHeartbeat:
    """Creates the node (if missing) and refreshes its conditions every ``HEARTBEAT`` s."""

    def __init__(self, store: ObjectStore, node: Obj) -> None:
        self.store = store
        self.node = node
        self.res = store.kind_for("v1", "Node")

    async def ensure(self) -> None:
        name = self.node["metadata"]["name"]
        try:
            created = await self.store.create(self.res, self.node, namespace=None)
        except AlreadyExists:
            created = await self.store.get(self.res, name, namespace=None)
        status = self.node["status"]

        def put(obj: Obj) -> None:
            obj["status"] = status

        await self.store.mutate(self.res, created["metadata"]["name"], put, namespace=None,
                                subresource="status")

    async def _renew_lease(self) -> None:
        from datetime import UTC, datetime

        name = self.node["metadata"]["name"]
        lease_res = self.store.kind_for("coordination.k8s.io/v1", "Lease")
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

        def put(obj: Obj) -> None:
            obj.setdefault("spec", {})["renewTime"] = renew

        try:
            await self.store.mutate(lease_res, name, put, namespace="kube-node-lease")
        except NotFound:
            node = await self.store.get(self.res, name, namespace=None)
            with contextlib.suppress(AlreadyExists):
                await self.store.create(lease_res, {
                    "metadata": {"name": name, "namespace": "kube-node-lease",
                                 "ownerReferences": [{"apiVersion": "v1", "kind": "Node",
                                                      "name": name,
                                                      "uid": node["metadata"]["uid"]}]},
                    "spec": {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS,
                             "renewTime": renew},
                }, namespace="kube-node-lease")

    async def run(self) -> None:
        name = self.node["metadata"]["name"]
        beats = 0
        while True:
            try:
                await self._renew_lease()
            except Exception:
                log.exception("node %s lease renewal failed", name)
            await asyncio.sleep(LEASE_RENEW)
            beats += 1
            if beats % int(HEARTBEAT // LEASE_RENEW):
                continue
            try:
                def beat(obj: Obj) -> None:
                    prev = {c["type"]: c for c in obj.get("status", {}).get("conditions") or []}
                    obj.setdefault("status", {})["conditions"] = _conditions(prev)

                await self.store.mutate(self.res, name, beat, namespace=None,
                                        subresource="status")
            except NotFound:
                await self.ensure()
            except Exception:
                log.exception("node %s heartbeat failed", name)
