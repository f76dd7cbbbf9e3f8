"""Deployments → ReplicaSets, with RollingUpdate and Recreate, as kube-controller-manager does.

Reference: kubernetes/kubernetes ``pkg/controller/deployment/`` (``rolling.go``:
scale up the new ReplicaSet within maxSurge, scale down old ones while keeping
``replicas - maxUnavailable`` available; ``sync.go`` / ``progress.go``: status and
the Available / Progressing conditions with their reasons), and
``pkg/controller/deployment/util`` (fenceposts: surge rounds up, unavailable down).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from datetime import datetime
from typing import Any

from meshproof.lab.kube.controllers.base import (
    Controller,
    Key,
    controller_owner_uid,
    owner_ref,
    set_condition,
)
from meshproof.lab.kube.interfaces import AlreadyExists, NotFound, ResourceKind

__all__ = ["DeploymentController", "resolve_fenceposts", "template_hash"]

Obj = dict[str, Any]
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand SafeEncodeString
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"


def template_hash(template: Obj) -> str:
    """A stable, label-safe hash of a pod template (without its pod-template-hash label)."""
    t = copy.deepcopy(template)
    (t.get("metadata") or {}).get("labels", {}).pop(HASH_LABEL, None)
    n = int.from_bytes(hashlib.sha256(json.dumps(t, sort_keys=True).encode()).digest()[:8], "big")
    out = ""
    for _ in range(10):
        n, r = divmod(n, len(_ALPHABET))
        out += _ALPHABET[r]
    return out


def _int_or_percent(value: Any, total: int, *, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        exact = float(value[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value or 0)


def resolve_fenceposts(replicas: int, strategy: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as absolute numbers; both zero becomes unavailable 1."""
    ru = strategy.get("rollingUpdate") or {}
    surge = _int_or_percent(ru.get("maxSurge", "25%"), replicas, round_up=True)
    unavailable = _int_or_percent(ru.get("maxUnavailable", "25%"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def _strip_hash(template: Obj) -> Obj:
    t = copy.deepcopy(template)
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return t


def _spec_replicas(rs: Obj) -> int:
    return int(rs.get("spec", {}).get("replicas", 0))


def _st(rs: Obj, field: str) -> int:
    return int(rs.get("status", {}).get(field, 0))


class DeploymentController(Controller):
    name = "deployment"
    component = "deployment-controller"

    def __init__(self, store: Any, *, cluster: str) -> None:
        super().__init__(store, cluster=cluster)
        self.deploy_res = self.res("apps/v1", "Deployment")
        self.rs_res = self.res("apps/v1", "ReplicaSet")
        self.watch_related(self.rs_res, self._rs_owner)

    @property
    def primary(self) -> ResourceKind:
        return self.deploy_res

    def _rs_owner(self, rs: Obj) -> list[Key]:
        for ref in rs["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "Deployment":
                return [(rs["metadata"].get("namespace", ""), ref["name"])]
        return []

    async def _scale(self, d: Obj, rs: Obj, replicas: int) -> Obj:
        old = _spec_replicas(rs)
        if old == replicas:
            return rs
        ns = rs["metadata"]["namespace"]

        def put(obj: Obj) -> None:
            obj["spec"]["replicas"] = replicas
            ann = obj["metadata"].setdefault("annotations", {})
            ann["deployment.kubernetes.io/desired-replicas"] = str(d["spec"].get("replicas", 1))

        rs = await self.store.mutate(self.rs_res, rs["metadata"]["name"], put, namespace=ns)
        verb = "up" if replicas > old else "down"
        await self.event(
            d, reason="ScalingReplicaSet",
            message=f"Scaled {verb} replica set {rs['metadata']['name']} from {old} to {replicas}")
        return rs

    async def reconcile(self, key: Key) -> None:
        ns, name = key
        try:
            d = await self.store.get(self.deploy_res, name, namespace=ns)
        except NotFound:
            return
        if d["metadata"].get("deletionTimestamp"):
            return
        spec = d.get("spec", {})
        uid = d["metadata"]["uid"]
        items, _ = await self.store.list(self.rs_res, namespace=ns)
        owned = [rs for rs in items if controller_owner_uid(rs) == uid
                 and not rs["metadata"].get("deletionTimestamp")]
        template = spec.get("template") or {}
        new_rs = next((rs for rs in owned if _strip_hash(rs["spec"].get("template") or {})
                       == _strip_hash(template)), None)
        old_rs = sorted((rs for rs in owned if rs is not new_rs),
                        key=lambda r: r["metadata"].get("creationTimestamp", ""))
        replicas = int(spec.get("replicas", 1))
        strategy = spec.get("strategy") or {"type": "RollingUpdate"}
        progress: tuple[str, str] | None = None
        if spec.get("paused"):
            await self._sync_status(d, new_rs, owned, progress)
            return
        if new_rs is None:
            new_rs = await self._create_new_rs(d, owned, template, old_rs, replicas, strategy)
            owned.append(new_rs)
            progress = ("NewReplicaSetCreated",
                        f'Created new replica set "{new_rs["metadata"]["name"]}"')
        else:
            await self._sync_revision(d, new_rs, old_rs)
        if strategy.get("type") == "Recreate":
            new_rs = await self._recreate(d, new_rs, old_rs, replicas)
        else:
            new_rs = await self._rolling(d, new_rs, old_rs, replicas, strategy)
        owned = [new_rs, *old_rs]
        await self._sync_status(d, new_rs, owned, progress)

    async def _create_new_rs(self, d: Obj, owned: list[Obj], template: Obj, old_rs: list[Obj],
                             replicas: int, strategy: Obj) -> Obj:
        ns = d["metadata"]["namespace"]
        h = template_hash(template)
        rs_template = copy.deepcopy(template)
        rs_template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = h
        selector = copy.deepcopy(d["spec"].get("selector") or {})
        selector.setdefault("matchLabels", {})[HASH_LABEL] = h
        revision = 1 + max([int(rs["metadata"].get("annotations", {}).get(REVISION, "0"))
                            for rs in owned] or [0])
        any_old_active = any(_spec_replicas(rs) > 0 for rs in old_rs)
        start = replicas if not any_old_active or strategy.get("type") == "Recreate" else 0
        if strategy.get("type") == "Recreate" and any_old_active:
            start = 0
        rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": f"{d['metadata']['name']}-{h}",
                "labels": {**(template.get("metadata", {}).get("labels") or {}), HASH_LABEL: h},
                "annotations": {REVISION: str(revision),
                                "deployment.kubernetes.io/desired-replicas": str(replicas),
                                "deployment.kubernetes.io/max-replicas": str(replicas)},
                "ownerReferences": [owner_ref(d)],
            },
            "spec": {"replicas": start, "selector": selector, "template": rs_template,
                     "minReadySeconds": d["spec"].get("minReadySeconds", 0)},
        }
        try:
            created = await self.store.create(self.rs_res, rs, namespace=ns)
        except AlreadyExists:
            created = await self.store.get(self.rs_res, rs["metadata"]["name"], namespace=ns)
        if start:
            await self.event(
                d, reason="ScalingReplicaSet",
                message=f"Scaled up replica set {created['metadata']['name']} from 0 to {start}")
        await self._set_revision(d, revision)
        return created

    async def _sync_revision(self, d: Obj, new_rs: Obj, old_rs: list[Obj]) -> None:
        """A template going back to an older ReplicaSet's makes that one the newest revision."""
        rev = int(new_rs["metadata"].get("annotations", {}).get(REVISION, "0"))
        newest = max([int(rs["metadata"].get("annotations", {}).get(REVISION, "0"))
                      for rs in old_rs] or [0])
        if rev <= newest:
            rev = newest + 1

            def put(obj: Obj) -> None:
                obj["metadata"].setdefault("annotations", {})[REVISION] = str(rev)

            await self.store.mutate(self.rs_res, new_rs["metadata"]["name"], put,
                                    namespace=new_rs["metadata"]["namespace"])
        await self._set_revision(d, rev)

    async def _set_revision(self, d: Obj, revision: int) -> None:
        if d["metadata"].get("annotations", {}).get(REVISION) == str(revision):
            return

        def put(obj: Obj) -> None:
            obj["metadata"].setdefault("annotations", {})[REVISION] = str(revision)

        await self.store.mutate(self.deploy_res, d["metadata"]["name"], put,
                                namespace=d["metadata"]["namespace"])

    async def _recreate(self, d: Obj, new_rs: Obj, old_rs: list[Obj], replicas: int) -> Obj:
        for i, rs in enumerate(old_rs):
            if _spec_replicas(rs):
                old_rs[i] = await self._scale(d, rs, 0)
        # New pods start only once every old pod is gone, terminating ones included.
        old_uids = {rs["metadata"]["uid"] for rs in old_rs}
        pods, _ = await self.store.list(self.res("v1", "Pod"),
                                        namespace=d["metadata"]["namespace"])
        if any(controller_owner_uid(p) in old_uids for p in pods):
            self.enqueue_after((d["metadata"]["namespace"], d["metadata"]["name"]), 0.5)
            return new_rs
        return await self._scale(d, new_rs, replicas)

    async def _rolling(self, d: Obj, new_rs: Obj, old_rs: list[Obj], replicas: int,
                       strategy: Obj) -> Obj:
        surge, unavailable = resolve_fenceposts(replicas, strategy)
        # Scale up the new ReplicaSet within maxSurge.
        if not any(_spec_replicas(rs) for rs in old_rs):
            target = replicas
        else:
            total = _spec_replicas(new_rs) + sum(_spec_replicas(rs) for rs in old_rs)
            room = replicas + surge - total
            target = _spec_replicas(new_rs)
            if room > 0:
                target = min(replicas, target + room)
            target = min(target, replicas)
        new_rs = await self._scale(d, new_rs, target)
        # Scale down old ReplicaSets while keeping minAvailable.
        min_available = replicas - unavailable
        all_count = _spec_replicas(new_rs) + sum(_spec_replicas(rs) for rs in old_rs)
        new_unavailable = _spec_replicas(new_rs) - _st(new_rs, "availableReplicas")
        budget = all_count - min_available - new_unavailable
        if budget <= 0:
            return new_rs
        # Unhealthy old replicas go first; they count for nothing.
        for i, rs in enumerate(old_rs):
            unhealthy = max(0, _spec_replicas(rs) - _st(rs, "availableReplicas"))
            take = min(unhealthy, budget)
            if take:
                old_rs[i] = await self._scale(d, rs, _spec_replicas(rs) - take)
                budget -= take
        available = _st(new_rs, "availableReplicas") + sum(
            min(_spec_replicas(rs), _st(rs, "availableReplicas")) for rs in old_rs)
        budget = min(budget, available - min_available)
        for i, rs in enumerate(old_rs):
            if budget <= 0:
                break
            take = min(_spec_replicas(rs), budget)
            if take:
                old_rs[i] = await self._scale(d, rs, _spec_replicas(rs) - take)
                budget -= take
        return new_rs

    async def _sync_status(self, d: Obj, new_rs: Obj | None, owned: list[Obj],
                           progress: tuple[str, str] | None) -> None:
        spec = d["spec"]
        replicas = int(spec.get("replicas", 1))
        _, unavailable_allowed = resolve_fenceposts(replicas, spec.get("strategy") or {}) \
            if (spec.get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate" \
            else (0, 0)
        status_replicas = sum(_st(rs, "replicas") for rs in owned)
        updated = _st(new_rs, "replicas") if new_rs else 0
        ready = sum(_st(rs, "readyReplicas") for rs in owned)
        available = sum(_st(rs, "availableReplicas") for rs in owned)
        total_spec = sum(_spec_replicas(rs) for rs in owned)
        status: Obj = {"observedGeneration": d["metadata"].get("generation", 1)}
        for field_name, value in (("replicas", status_replicas), ("updatedReplicas", updated),
                                  ("readyReplicas", ready), ("availableReplicas", available),
                                  ("unavailableReplicas", max(0, total_spec - available))):
            if value:
                status[field_name] = value  # omitempty: zero is absent, as the API shows it
        conditions = list(d.get("status", {}).get("conditions") or [])
        if available >= replicas - unavailable_allowed:
            conditions = set_condition(conditions, "Available", "True", "MinimumReplicasAvailable",
                                       "Deployment has minimum availability.")
        else:
            conditions = set_condition(conditions, "Available", "False",
                                       "MinimumReplicasUnavailable",
                                       "Deployment does not have minimum availability.")
        rs_name = new_rs["metadata"]["name"] if new_rs else ""
        complete = (new_rs is not None and updated == replicas and status_replicas == replicas
                    and available == replicas and _spec_replicas(new_rs) == replicas)
        prev = next((c for c in conditions if c["type"] == "Progressing"), None)
        if spec.get("paused"):
            conditions = set_condition(conditions, "Progressing", "Unknown", "DeploymentPaused",
                                       "Deployment is paused")
        elif complete:
            conditions = set_condition(conditions, "Progressing", "True",
                                       "NewReplicaSetAvailable",
                                       f'ReplicaSet "{rs_name}" has successfully progressed.')
        elif progress is not None:
            conditions = set_condition(conditions, "Progressing", "True", *progress)
        elif prev is None or prev.get("reason") == "NewReplicaSetAvailable" or \
                prev.get("message", "").find(f'"{rs_name}"') < 0:
            conditions = set_condition(conditions, "Progressing", "True", "ReplicaSetUpdated",
                                       f'ReplicaSet "{rs_name}" is progressing.')
        elif prev.get("reason") != "ProgressDeadlineExceeded":
            deadline = int(spec.get("progressDeadlineSeconds", 600))
            stamp = str(prev.get("lastUpdateTime") or prev.get("lastTransitionTime") or "")
            since = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S%z").timestamp() if stamp \
                else time.time()
            if time.time() - since > deadline:
                conditions = set_condition(conditions, "Progressing", "False",
                                           "ProgressDeadlineExceeded",
                                           f'ReplicaSet "{rs_name}" has timed out progressing.')
            else:
                self.enqueue_after((d["metadata"]["namespace"], d["metadata"]["name"]),
                                   min(30.0, deadline))
        status["conditions"] = conditions
        if d.get("status") == status:
            return

        def put(obj: Obj) -> None:
            obj["status"] = status

        try:
            await self.store.mutate(self.deploy_res, d["metadata"]["name"], put,
                                    namespace=d["metadata"]["namespace"], subresource="status")
        except NotFound:
            pass
