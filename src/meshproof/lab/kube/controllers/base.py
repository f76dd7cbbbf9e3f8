"""A level-triggered controller loop: watches enqueue keys, one worker reconciles them.

Like client-go's workqueue: a key queued twice before it is handled is handled once;
a failing reconcile is retried after a short delay; every ``resync`` seconds all
primary objects are queued again, so a missed event is repaired.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from meshproof.lab.kube.interfaces import ObjectStore, ResourceKind, StoreError

__all__ = [
    "Controller",
    "Key",
    "controller_owner_uid",
    "is_pod_ready",
    "now_rfc3339",
    "owner_ref",
    "record_event",
    "set_condition",
]

log = logging.getLogger(__name__)
Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def record_event(store: ObjectStore, involved: Obj, *, reason: str, message: str,
                       type_: str = "Normal", component: str = "") -> None:
    """``store.record_event`` naming the reporting component (``kubectl describe`` shows it
    as *From*) when the store accepts one; the seam's protocol does not require it."""
    recorder: Any = store.record_event
    if component:
        try:
            await recorder(involved, reason=reason, message=message, type_=type_,
                           component=component)
            return
        except TypeError:
            pass
    await recorder(involved, reason=reason, message=message, type_=type_)


def owner_ref(owner: Obj) -> Obj:
    """An ownerReference making ``owner`` the controller of the new object."""
    return {"apiVersion": owner.get("apiVersion"), "kind": owner.get("kind"),
            "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def controller_owner_uid(obj: Obj) -> str | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def is_pod_ready(pod: Obj) -> bool:
    for cond in pod.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def set_condition(conditions: list[Obj], type_: str, status: str, reason: str, message: str,
                  *, update_time: bool = True) -> list[Obj]:
    """Replace condition ``type_``: lastTransitionTime moves only when status changes,
    lastUpdateTime when anything does (Deployment's two timestamps)."""
    now = now_rfc3339()
    out = [c for c in conditions if c.get("type") != type_]
    prev = next((c for c in conditions if c.get("type") == type_), None)
    cond: Obj = {"type": type_, "status": status, "reason": reason, "message": message}
    if update_time:
        same = prev is not None and all(prev.get(k) == cond[k] for k in ("status", "reason",
                                                                          "message"))
        cond["lastUpdateTime"] = prev.get("lastUpdateTime", now) if same and prev else now
    cond["lastTransitionTime"] = (prev.get("lastTransitionTime", now)
                                  if prev is not None and prev.get("status") == status else now)
    out.append(cond)
    return sorted(out, key=lambda c: c["type"] != "Available")  # Available first, as kubectl shows


class Controller:
    """Subclasses set ``primary`` and implement ``reconcile``; ``watch_related`` adds
    secondary watches mapping objects to primary keys."""

    name = "controller"
    component = "controller-manager"
    resync = 10.0

    def __init__(self, store: ObjectStore, *, cluster: str) -> None:
        self.store = store
        self.cluster = cluster
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._pending: set[Key] = set()
        self._watches: list[tuple[ResourceKind, Callable[[Obj], Iterable[Key]]]] = []

    def res(self, api_version: str, kind: str) -> ResourceKind:
        return self.store.kind_for(api_version, kind)

    @property
    def primary(self) -> ResourceKind:
        raise NotImplementedError

    async def event(self, involved: Obj, *, reason: str, message: str,
                    type_: str = "Normal") -> None:
        """Record an Event; one the API refuses (a terminating namespace) is dropped, as a
        real controller's event recorder drops it."""
        try:
            await record_event(self.store, involved, reason=reason, message=message,
                               type_=type_, component=self.component)
        except StoreError as exc:
            log.debug("%s/%s: event %s dropped: %s", self.cluster, self.name, reason, exc)

    def watch_related(self, res: ResourceKind, keys: Callable[[Obj], Iterable[Key]]) -> None:
        self._watches.append((res, keys))

    def enqueue(self, key: Key) -> None:
        if key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(key)

    def enqueue_after(self, key: Key, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.enqueue, key)

    async def reconcile(self, key: Key) -> None:
        raise NotImplementedError

    async def on_deleted(self, obj: Obj) -> None:
        """A primary object went away (dependents go by garbage collection)."""

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._watch(self.primary, self._own_key, primary=True))]
        tasks += [asyncio.create_task(self._watch(r, k)) for r, k in self._watches]
        tasks.append(asyncio.create_task(self._resync()))
        try:
            while True:
                key = await self._queue.get()
                self._pending.discard(key)
                try:
                    await self.reconcile(key)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("%s/%s: reconcile %s failed", self.cluster, self.name, key)
                    self.enqueue_after(key, 1.0)
        finally:
            for t in tasks:
                t.cancel()

    @staticmethod
    def _own_key(obj: Obj) -> Iterable[Key]:
        meta = obj.get("metadata", {})
        return [(str(meta.get("namespace", "")), str(meta["name"]))]

    async def _watch(self, res: ResourceKind, keys: Callable[[Obj], Iterable[Key]], *,
                     primary: bool = False) -> None:
        while True:
            try:
                async for ev in self.store.watch(res):
                    if ev.type in ("BOOKMARK", "ERROR"):
                        continue
                    if primary and ev.type == "DELETED":
                        await self.on_deleted(ev.object)
                    for key in keys(ev.object):
                        self.enqueue(key)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s/%s: watch of %s failed", self.cluster, self.name, res.plural)
            await asyncio.sleep(0.5)

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.resync)
            try:
                items, _ = await self.store.list(self.primary)
            except Exception:
                log.exception("%s/%s: resync failed", self.cluster, self.name)
                continue
            for obj in items:
                for key in self._own_key(obj):
                    self.enqueue(key)
