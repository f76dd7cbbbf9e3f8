"""DaemonSets: one pod per node, and the lab has one node per cluster.

Reference: kubernetes/kubernetes ``pkg/controller/daemon/`` (pods named
``<ds>-<5 chars>``, labels ``controller-revision-hash`` and ``pod-template-generation``,
RollingUpdate replacing the pod of an old revision, status
``desiredNumberScheduled`` / ``currentNumberScheduled`` / ``numberReady`` /
``updatedNumberScheduled`` / ``numberAvailable``).
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
from meshproof.lab.kube.interfaces import NotFound, ResourceKind

__all__ = ["DaemonSetController"]

Obj = dict[str, Any]
REVISION_LABEL = "controller-revision-hash"


class DaemonSetController(Controller):
    name = "daemonset"
    component = "daemonset-controller"

    def __init__(self, store: Any, *, cluster: str, node_name: str) -> None:
        super().__init__(store, cluster=cluster)
        self.node_name = node_name
        self.ds_res = self.res("apps/v1", "DaemonSet")
        self.pods = self.res("v1", "Pod")
        self.watch_related(self.pods, self._pod_owner)

    @property
    def primary(self) -> ResourceKind:
        return self.ds_res

    def _pod_owner(self, pod: Obj) -> list[Key]:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "DaemonSet":
                return [(pod["metadata"].get("namespace", ""), ref["name"])]
        return []

    async def reconcile(self, key: Key) -> None:
        ns, name = key
        try:
            ds = await self.store.get(self.ds_res, name, namespace=ns)
        except NotFound:
            return
        if ds["metadata"].get("deletionTimestamp"):
            return
        spec = ds.get("spec", {})
        revision = template_hash(spec.get("template") or {})
        items, _ = await self.store.list(self.pods, namespace=ns)
        pods = [p for p in items if controller_owner_uid(p) == ds["metadata"]["uid"]]
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")
                and p.get("status", {}).get("phase") != "Failed"]
        for failed in (p for p in pods if p.get("status", {}).get("phase") == "Failed"):
            await self._delete(ds, failed)
        rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == \
            "RollingUpdate"
        if rolling:
            for old in [p for p in live
                        if p["metadata"].get("labels", {}).get(REVISION_LABEL) != revision]:
                await self._delete(ds, old)
                live.remove(old)
        for extra in live[1:]:
            await self._delete(ds, extra)
        live = live[:1]
        terminating = any(p["metadata"].get("deletionTimestamp") for p in pods)
        if not live and not terminating:
            pod = pod_from_template(spec.get("template") or {}, ds, generate_name=f"{name}-",
                                    extra_labels={REVISION_LABEL: revision,
                                                  "pod-template-generation": str(
                                                      ds["metadata"].get("generation", 1))})
            # The DaemonSet controller binds its pods itself.
            pod["spec"]["nodeName"] = self.node_name
            created = await self.store.create(self.pods, pod, namespace=ns)
            live = [created]
            await self.event(ds, reason="SuccessfulCreate",
                             message=f"Created pod: {created['metadata']['name']}")
        ready = sum(1 for p in live if is_pod_ready(p))
        updated = sum(1 for p in live
                      if p["metadata"].get("labels", {}).get(REVISION_LABEL) == revision)
        status: Obj = {"currentNumberScheduled": len(live), "desiredNumberScheduled": 1,
                       "numberMisscheduled": 0, "numberReady": ready,
                       "observedGeneration": ds["metadata"].get("generation", 1),
                       "updatedNumberScheduled": updated, "numberAvailable": ready}
        if ready < 1:
            status["numberUnavailable"] = 1
        if ds.get("status") != status:
            def put(obj: Obj) -> None:
                obj["status"] = status

            try:
                await self.store.mutate(self.ds_res, name, put, namespace=ns,
                                        subresource="status")
            except NotFound:
                pass

    async def _delete(self, ds: Obj, pod: Obj) -> None:
        try:
            await self.store.delete(self.pods, pod["metadata"]["name"],
                                    namespace=pod["metadata"]["namespace"])
        except NotFound:
            return
        await self.event(ds, reason="SuccessfulDelete",
                         message=f"Deleted pod: {pod['metadata']['name']}")
