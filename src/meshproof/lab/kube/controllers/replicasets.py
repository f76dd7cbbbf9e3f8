"""ReplicaSets keep ``spec.replicas`` pods of their template running.

Reference: kubernetes/kubernetes ``pkg/controller/replicaset/replica_set.go`` (pod
naming ``<rs>-<5 chars>``, which pods go first on scale-down, status fields).
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from meshproof.lab.kube.controllers.base import (
    Controller,
    Key,
    controller_owner_uid,
    is_pod_ready,
    owner_ref,
)
from meshproof.lab.kube.interfaces import NotFound, ResourceKind
from meshproof.lab.kube.selectors import selector_from_match

__all__ = ["ReplicaSetController", "available_pods", "pod_from_template"]

Obj = dict[str, Any]


def pod_from_template(template: Obj, owner: Obj, *, name: str = "", generate_name: str = "",
                      extra_labels: dict[str, str] | None = None) -> Obj:
    """A Pod object built from a pod template, owned by ``owner``."""
    tmeta = template.get("metadata") or {}
    meta: Obj = {
        "labels": {**(tmeta.get("labels") or {}), **(extra_labels or {})},
        "ownerReferences": [owner_ref(owner)],
    }
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def _ready_since(pod: Obj) -> float | None:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("status") == "True":
            when = cond.get("lastTransitionTime")
            if when:
                return datetime.strptime(when, "%Y-%m-%dT%H:%M:%S%z").timestamp()
            return 0.0
    return None


def available_pods(pods: list[Obj], min_ready_seconds: int, now: float) -> int:
    """Pods Ready for at least ``minReadySeconds``."""
    count = 0
    for p in pods:
        since = _ready_since(p)
        if since is not None and (min_ready_seconds <= 0 or now - since >= min_ready_seconds):
            count += 1
    return count


def _deletion_rank(pod: Obj) -> tuple[int, int, int, int, str]:
    """Lower goes first: unscheduled, pending, not ready, more restarts, newer."""
    status = pod.get("status", {})
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(status.get("phase", ""), 0)
    restarts = sum(c.get("restartCount", 0) for c in status.get("containerStatuses") or [])
    created = pod["metadata"].get("creationTimestamp", "")
    inverted = "".join(chr(0x7F - ord(ch)) for ch in created)  # newest first
    return (1 if pod.get("spec", {}).get("nodeName") else 0, phase_rank,
            1 if is_pod_ready(pod) else 0, -restarts, inverted)


class ReplicaSetController(Controller):
    name = "replicaset"
    component = "replicaset-controller"

    def __init__(self, store: Any, *, cluster: str) -> None:
        super().__init__(store, cluster=cluster)
        self.rs_res = self.res("apps/v1", "ReplicaSet")
        self.pods = self.res("v1", "Pod")
        self.watch_related(self.pods, self._pod_owner)

    @property
    def primary(self) -> ResourceKind:
        return self.rs_res

    def _pod_owner(self, pod: Obj) -> list[Key]:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "ReplicaSet":
                return [(pod["metadata"].get("namespace", ""), ref["name"])]
        return []

    async def reconcile(self, key: Key) -> None:
        import time

        ns, name = key
        try:
            rs = await self.store.get(self.rs_res, name, namespace=ns)
        except NotFound:
            return
        if rs["metadata"].get("deletionTimestamp"):
            return
        spec = rs.get("spec", {})
        uid = rs["metadata"]["uid"]
        selector = selector_from_match(spec.get("selector"))
        all_pods, _ = await self.store.list(self.pods, namespace=ns)
        owned = [p for p in all_pods if controller_owner_uid(p) == uid
                 and selector.matches(p["metadata"].get("labels"))]
        active = [p for p in owned if not p["metadata"].get("deletionTimestamp")
                  and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
        want = int(spec.get("replicas", 1))
        diff = len(active) - want
        if diff < 0:
            for _ in range(-diff):
                pod = pod_from_template(spec.get("template") or {}, rs,
                                        generate_name=f"{name}-")
                created = await self.store.create(self.pods, pod, namespace=ns)
                active.append(created)
                await self.event(rs, reason="SuccessfulCreate",
                                              message=f"Created pod: {created['metadata']['name']}")
        elif diff > 0:
            victims = sorted(active, key=_deletion_rank)[:diff]
            for pod in victims:
                try:
                    await self.store.delete(self.pods, pod["metadata"]["name"], namespace=ns)
                except NotFound:
                    pass
                active.remove(pod)
                await self.event(rs, reason="SuccessfulDelete",
                                              message=f"Deleted pod: {pod['metadata']['name']}")
        min_ready = int(spec.get("minReadySeconds", 0))
        ready = sum(1 for p in active if is_pod_ready(p))
        available = available_pods(active, min_ready, time.time())
        if min_ready and available < ready:
            self.enqueue_after(key, 1.0)
        status: Obj = {"replicas": len(active), "fullyLabeledReplicas": len(active),
                       "observedGeneration": rs["metadata"].get("generation", 1)}
        if ready:
            status["readyReplicas"] = ready
        if available:
            status["availableReplicas"] = available
        if rs.get("status") != status:
            def put(obj: Obj) -> None:
                obj["status"] = status

            await self.store.mutate(self.rs_res, name, put, namespace=ns, subresource="status")
