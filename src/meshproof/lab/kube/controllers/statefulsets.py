"""StatefulSets: pods ``<name>-0 .. <name>-(n-1)``, started in order, updated from the top.

Reference: kubernetes/kubernetes ``pkg/controller/statefulset/stateful_set_control.go``
(OrderedReady waits for each pod to be Ready before the next; scale-down and
RollingUpdate go from the highest ordinal; ``partition``), pod labels
``statefulset.kubernetes.io/pod-name``, ``apps.kubernetes.io/pod-index``,
``controller-revision-hash``; PVCs ``<template>-<pod>``.
"""

from __future__ import annotations

from typing import Any

from meshproof.lab.kube.controllers.base import (
    Controller,
    Key,
    controller_owner_uid,
    is_pod_ready,
)
from meshproof.lab.kube.controllers.deployments import template_hash
from meshproof.lab.kube.controllers.replicasets import pod_from_template
from meshproof.lab.kube.interfaces import AlreadyExists, NotFound, ResourceKind

__all__ = ["StatefulSetController"]

Obj = dict[str, Any]
REVISION_LABEL = "controller-revision-hash"


def _ordinal(pod: Obj, sts_name: str) -> int | None:
    name = pod["metadata"]["name"]
    prefix = f"{sts_name}-"
    if name.startswith(prefix) and name[len(prefix):].isdigit():
        return int(name[len(prefix):])
    return None


class StatefulSetController(Controller):
    name = "statefulset"
    component = "statefulset-controller"

    def __init__(self, store: Any, *, cluster: str) -> None:
        super().__init__(store, cluster=cluster)
        self.sts_res = self.res("apps/v1", "StatefulSet")
        self.pods = self.res("v1", "Pod")
        self.pvcs = self.res("v1", "PersistentVolumeClaim")
        self.watch_related(self.pods, self._pod_owner)

    @property
    def primary(self) -> ResourceKind:
        return self.sts_res

    def _pod_owner(self, pod: Obj) -> list[Key]:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "StatefulSet":
                return [(pod["metadata"].get("namespace", ""), ref["name"])]
        return []

    def _new_pod(self, sts: Obj, ordinal: int, revision: str) -> Obj:
        name = sts["metadata"]["name"]
        pod_name = f"{name}-{ordinal}"
        spec = sts["spec"]
        pod = pod_from_template(spec.get("template") or {}, sts, name=pod_name, extra_labels={
            "statefulset.kubernetes.io/pod-name": pod_name,
            "apps.kubernetes.io/pod-index": str(ordinal),
            REVISION_LABEL: revision,
        })
        pod["spec"]["hostname"] = pod_name
        if spec.get("serviceName"):
            pod["spec"]["subdomain"] = spec["serviceName"]
        volumes = pod["spec"].setdefault("volumes", [])
        for claim in spec.get("volumeClaimTemplates") or []:
            cname = claim["metadata"]["name"]
            volumes[:] = [v for v in volumes if v.get("name") != cname]
            volumes.append({"name": cname,
                            "persistentVolumeClaim": {"claimName": f"{cname}-{pod_name}"}})
        return pod

    async def _ensure_claims(self, sts: Obj, pod_name: str) -> None:
        ns = sts["metadata"]["namespace"]
        for claim in sts["spec"].get("volumeClaimTemplates") or []:
            cname = f"{claim['metadata']['name']}-{pod_name}"
            pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": cname,
                                "labels": dict(sts["spec"].get("selector", {})
                                               .get("matchLabels") or {})},
                   "spec": claim.get("spec") or {}}
            try:
                created = await self.store.create(self.pvcs, pvc, namespace=ns)
            except AlreadyExists:
                continue
            storage = ((claim.get("spec") or {}).get("resources") or {}).get("requests", {}).get(
                "storage", "1Gi")

            def bound(obj: Obj, storage: str = storage) -> None:
                obj["status"] = {"phase": "Bound", "accessModes": obj["spec"].get(
                    "accessModes", ["ReadWriteOnce"]), "capacity": {"storage": storage}}

            await self.store.mutate(self.pvcs, created["metadata"]["name"], bound, namespace=ns,
                                    subresource="status")

    async def reconcile(self, key: Key) -> None:
        ns, name = key
        try:
            sts = await self.store.get(self.sts_res, name, namespace=ns)
        except NotFound:
            return
        if sts["metadata"].get("deletionTimestamp"):
            return
        spec = sts["spec"]
        replicas = int(spec.get("replicas", 1))
        ordered = spec.get("podManagementPolicy", "OrderedReady") == "OrderedReady"
        revision = f"{name}-{template_hash(spec.get('template') or {})}"
        uid = sts["metadata"]["uid"]
        items, _ = await self.store.list(self.pods, namespace=ns)
        pods: dict[int, Obj] = {}
        for p in items:
            o = _ordinal(p, name)
            if o is not None and controller_owner_uid(p) == uid:
                pods[o] = p
        blocked = False
        for i in range(replicas):
            pod = pods.get(i)
            if pod is None:
                if blocked:
                    break
                await self._ensure_claims(sts, f"{name}-{i}")
                try:
                    created = await self.store.create(self.pods, self._new_pod(sts, i, revision),
                                                      namespace=ns)
                except AlreadyExists:
                    continue
                pods[i] = created
                await self.event(
                    sts, reason="SuccessfulCreate",
                    message=f"create Pod {name}-{i} in StatefulSet {name} successful")
                if ordered:
                    blocked = True
                continue
            if pod["metadata"].get("deletionTimestamp"):
                blocked = blocked or ordered
                continue
            if pod.get("status", {}).get("phase") in ("Failed", "Succeeded"):
                await self._delete(sts, pod)
                blocked = blocked or ordered
                continue
            if ordered and not is_pod_ready(pod):
                blocked = True
        # Scale down from the highest ordinal, one at a time when ordered.
        extra = sorted((o for o in pods if o >= replicas), reverse=True)
        terminating = any(p["metadata"].get("deletionTimestamp") for p in pods.values())
        for o in extra:
            if pods[o]["metadata"].get("deletionTimestamp"):
                continue
            if ordered and (terminating or blocked):
                break
            await self._delete(sts, pods[o])
            terminating = True
        # Rolling update: highest ordinal with an old revision, once the rest is healthy.
        strategy = spec.get("updateStrategy") or {"type": "RollingUpdate"}
        if strategy.get("type") == "RollingUpdate" and not blocked and not terminating:
            partition = int((strategy.get("rollingUpdate") or {}).get("partition", 0))
            for o in sorted((o for o in pods if partition <= o < replicas), reverse=True):
                p = pods[o]
                if p["metadata"].get("labels", {}).get(REVISION_LABEL) != revision:
                    if all(is_pod_ready(q) for k, q in pods.items() if k < replicas and k != o):
                        await self._delete(sts, p)
                    break
        await self._status(sts, pods, replicas, revision)

    async def _delete(self, sts: Obj, pod: Obj) -> None:
        pname = pod["metadata"]["name"]
        try:
            await self.store.delete(self.pods, pname, namespace=pod["metadata"]["namespace"])
        except NotFound:
            return
        await self.event(
            sts, reason="SuccessfulDelete",
            message=f"delete Pod {pname} in StatefulSet {sts['metadata']['name']} successful")

    async def _status(self, sts: Obj, pods: dict[int, Obj], replicas: int, revision: str) -> None:
        live = [p for p in pods.values() if not p["metadata"].get("deletionTimestamp")]
        updated = [p for p in live if p["metadata"].get("labels", {}).get(REVISION_LABEL)
                   == revision]
        ready = sum(1 for p in live if is_pod_ready(p))
        current_rev = sts.get("status", {}).get("currentRevision") or revision
        if len(updated) == len(live) == replicas:
            current_rev = revision
        current = sum(1 for p in live if p["metadata"].get("labels", {}).get(REVISION_LABEL)
                      == current_rev)
        status: Obj = {
            "observedGeneration": sts["metadata"].get("generation", 1),
            "replicas": len(live), "readyReplicas": ready, "currentReplicas": current,
            "updatedReplicas": len(updated), "availableReplicas": ready,
            "currentRevision": current_rev, "updateRevision": revision, "collisionCount": 0,
        }
        for k in ("readyReplicas", "currentReplicas", "updatedReplicas"):
            if not status[k]:
                del status[k]
        if sts.get("status") == status:
            return

        def put(obj: Obj) -> None:
            obj["status"] = status

        try:
            await self.store.mutate(self.sts_res, sts["metadata"]["name"], put,
                                    namespace=sts["metadata"]["namespace"], subresource="status")
        except NotFound:
            pass
