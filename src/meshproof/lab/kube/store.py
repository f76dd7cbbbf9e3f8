"""The in-memory object store of one lab cluster: the ``ObjectStore`` the seam promises.

Every write gets the next cluster-wide resourceVersion, is appended to a bounded
history and fanned out to watchers; a watch that resumes from a version the
history no longer covers gets an ERROR event with a 410 ``Status``. Writes
commit synchronously on the event loop (no ``await`` between the conflict check
and the store), so controllers, the kubelet and clients never interleave a
half-done write. Everything runs on one asyncio loop.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from meshproof.lab.kube.apierrors import BadRequest, Forbidden, status_object
from meshproof.lab.kube.defaults import apply_defaults
from meshproof.lab.kube.interfaces import (
    AdmissionHook,
    AlreadyExists,
    Conflict,
    NotFound,
    ResourceKind,
    WatchEvent,
)
from meshproof.lab.kube.kinds import (
    ServiceAddresses,
    crd_resources,
    crd_status,
    default_job_selector,
)
from meshproof.lab.kube.resources import ResourceTable, builtin_table
from meshproof.lab.kube.selectors import (
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
)
from meshproof.lab.kube.validation import validate

__all__ = ["SYSTEM_NAMESPACES", "MemoryStore", "rfc3339"]

Obj = dict[str, Any]
_Key = tuple[str, str]  # (group, plural): one storage for all versions of a resource

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery/pkg/util/rand
_NAMESPACE_KIND = ResourceKind("", "v1", "namespaces", "Namespace", namespaced=False)
_SA_KIND = ResourceKind("", "v1", "serviceaccounts", "ServiceAccount")
_EVENT_KIND = ResourceKind("", "v1", "events", "Event")
_CRD_GROUP = "apiextensions.k8s.io"


def rfc3339(ts: float) -> str:
    """Kubernetes' timestamp format: second precision, UTC, ``Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _key(res: ResourceKind) -> _Key:
    return (res.group, res.plural)


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta


def _spec_part(obj: Obj) -> Obj:
    """What ``metadata.generation`` tracks: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


@dataclass(eq=False)
class _Watcher:
    key: _Key
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    queue: asyncio.Queue[WatchEvent | None] = field(default_factory=asyncio.Queue)

    def matches(self, obj: Obj | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace and meta.get("namespace") != self.namespace:
            return False
        return self.labels.matches(meta.get("labels")) and self.fields.matches(obj)

    def translate(self, type_: str, obj: Obj, old: Obj | None) -> WatchEvent | None:
        """The event this watcher sees: objects moving in or out of its selection are
        ADDED / DELETED for it, as with a real API server."""
        now, before = self.matches(obj), self.matches(old)
        if type_ == "ADDED":
            return WatchEvent("ADDED", obj) if now else None
        if type_ == "DELETED":
            return WatchEvent("DELETED", obj) if now or before else None
        if now and before:
            return WatchEvent("MODIFIED", obj)
        if now:
            return WatchEvent("ADDED", obj)
        if before:
            return WatchEvent("DELETED", obj)
        return None


@dataclass(frozen=True, slots=True)
class _Change:
    rv: int
    key: _Key
    type: str
    obj: Obj
    old: Obj | None


class MemoryStore:
    """All objects of one cluster, in memory. Implements ``interfaces.ObjectStore``.

    ``service_cidr`` is where Service clusterIPs are allocated (the lab's address
    plan gives each cluster its own loopback range); ``history`` is how many
    changes a watch can resume across before it gets 410.
    """

    def __init__(self, cluster: str, *, table: ResourceTable | None = None,
                 service_cidr: str = "127.11.0.0/16", history: int = 10000,
                 clock: Callable[[], float] = time.time) -> None:
        self.cluster = cluster
        self.table = table or builtin_table()
        self._clock = clock
        self._objects: dict[_Key, dict[tuple[str, str], Obj]] = {}
        self._rv = 0
        self._history: deque[_Change] = deque(maxlen=history)
        self._compacted = 0  # every change with rv <= this may have left the history
        self._watchers: set[_Watcher] = set()
        self._hooks: list[AdmissionHook] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._addresses = ServiceAddresses(service_cidr, cluster=cluster)
        self._closed = False
        for ns in SYSTEM_NAMESPACES:
            self._bootstrap_namespace(ns)

    # -- the seam ------------------------------------------------------------------------

    def kind_for(self, api_version: str, kind: str) -> ResourceKind:
        return self.table.kind_for(api_version, kind)

    def add_admission_hook(self, hook: AdmissionHook) -> None:
        self._hooks.append(hook)

    @property
    def resource_version(self) -> str:
        """The newest resourceVersion handed out."""
        return str(self._rv)

    @property
    def compacted(self) -> int:
        """The newest resourceVersion whose change may have left the history."""
        return self._compacted

    async def create(self, res: ResourceKind, obj: Obj, *, namespace: str | None,
                     dry_run: bool = False) -> Obj:
        obj = copy.deepcopy(obj)
        meta = _meta(obj)
        if res.namespaced:
            if namespace and meta.get("namespace") and meta["namespace"] != namespace:
                raise BadRequest("the namespace of the provided object does not match the "
                                 "namespace sent on the request")
            meta["namespace"] = namespace or meta.get("namespace") or "default"
        else:
            meta.pop("namespace", None)
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        obj = await self._admit(res, "CREATE", obj)
        meta = _meta(obj)
        ns, name = meta.get("namespace", ""), meta["name"]
        if res.namespaced:
            self._check_namespace_open(ns, res, name)
        bucket = self._objects.setdefault(_key(res), {})
        if (ns, name) in bucket:
            raise AlreadyExists(f'{self._what(res)} "{name}" already exists',
                                details={"name": name, "group": res.group, "kind": res.plural})
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339(self._clock())
        meta["generation"] = 1
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
            meta.pop(transient, None)
        self._on_create(res, obj)
        if dry_run:
            if _key(res) == ("", "services"):
                self._addresses.release(obj)
            return obj
        self._commit(res, "ADDED", obj, None)
        await self._after_create(res, obj)
        return copy.deepcopy(obj)

    async def get(self, res: ResourceKind, name: str, *, namespace: str | None) -> Obj:
        return self._view(res, self._current(res, name, namespace))

    async def list(self, res: ResourceKind, *, namespace: str | None = None,
                   label_selector: str = "", field_selector: str = "") -> tuple[list[Obj], str]:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        bucket = self._objects.get(_key(res), {})
        items = []
        for (ns, _), obj in sorted(bucket.items()):
            if namespace and res.namespaced and ns != namespace:
                continue
            if labels.matches(_meta(obj).get("labels")) and fields.matches(obj):
                items.append(self._view(res, obj))
        return items, str(self._rv)

    async def update(self, res: ResourceKind, obj: Obj, *, subresource: str = "",
                     dry_run: bool = False) -> Obj:
        meta = _meta(obj)
        name = meta.get("name") or ""
        ns = meta.get("namespace") if res.namespaced else None
        cur = self._current(res, name, ns)
        new = copy.deepcopy(obj)
        if subresource == "status":
            merged = copy.deepcopy(cur)
            merged["status"] = new.get("status", {})
            # A status write may carry a resourceVersion precondition but no other metadata.
            _meta(merged)["resourceVersion"] = meta.get("resourceVersion")
            new = merged
        else:
            new = await self._admit(res, "UPDATE", new, old=cur)
        view, removed = self._commit_update(res, new, ns, name, dry_run=dry_run,
                                            keep_status=subresource != "status")
        if removed is not None:
            await self._collect_dependents(removed, None)
        return view

    async def mutate(self, res: ResourceKind, name: str, change: Callable[[Obj], Obj | None], *,
                     namespace: str | None, subresource: str = "") -> Obj:
        ns = namespace if res.namespaced else None
        for _ in range(20):
            cur = self._current(res, name, ns)
            draft = copy.deepcopy(cur)
            new = change(draft)
            new = draft if new is None else new
            _meta(new)["resourceVersion"] = _meta(cur)["resourceVersion"]
            try:
                return await self.update(res, new, subresource=subresource)
            except Conflict:
                continue  # an admission hook awaited and someone else wrote; read again
        raise Conflict(f'{self._what(res)} "{name}" kept changing while being updated in '
                       f'cluster {self.cluster}')

    async def delete(self, res: ResourceKind, name: str, *, namespace: str | None,
                     grace_period_seconds: int | None = None,
                     propagation_policy: str | None = None,
                     preconditions: dict[str, Any] | None = None,
                     dry_run: bool = False) -> Obj:
        ns = namespace if res.namespaced else None
        cur = self._current(res, name, ns)
        for field_name in ("uid", "resourceVersion"):
            want = (preconditions or {}).get(field_name)
            if want and _meta(cur).get(field_name) != want:
                raise Conflict(f'Operation cannot be fulfilled on {self._what(res)} "{name}": '
                               f'the precondition {field_name} {want} does not match',
                               details={"name": name, "group": res.group, "kind": res.plural})
        if dry_run:
            return self._view(res, cur)
        meta = _meta(cur)
        if _key(res) == ("", "namespaces"):
            return self._start_namespace_deletion(cur)
        grace = self._pod_grace(cur, grace_period_seconds) if _key(res) == ("", "pods") else 0
        if grace > 0 or meta.get("finalizers"):
            if meta.get("deletionTimestamp") and grace == 0:
                return self._view(res, cur)
            marked = copy.deepcopy(cur)
            mmeta = _meta(marked)
            if not mmeta.get("deletionTimestamp") or grace < mmeta.get(
                    "deletionGracePeriodSeconds", grace + 1):
                mmeta["deletionTimestamp"] = rfc3339(self._clock() + grace)
                mmeta["deletionGracePeriodSeconds"] = grace
            self._commit(res, "MODIFIED", marked, cur)
            return self._view(res, marked)
        self._remove(res, cur)
        await self._collect_dependents(cur, propagation_policy)
        return self._view(res, cur)

    async def finalize(self, res: ResourceKind, name: str, *, namespace: str | None) -> None:
        ns = namespace if res.namespaced else None
        cur = self._current(res, name, ns)
        self._remove(res, cur)
        await self._collect_dependents(cur, None)

    def watch(self, res: ResourceKind, *, namespace: str | None = None, label_selector: str = "",
              field_selector: str = "", resource_version: str = "") -> AsyncIterator[WatchEvent]:
        # Parse now so that a bad selector fails the request, not the first event.
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector)
        watcher = _Watcher(_key(res), namespace if res.namespaced else None, labels, fields)
        return self._watch(res, watcher, resource_version)

    async def record_event(self, involved: Obj, *, reason: str, message: str,
                           type_: str = "Normal", component: str = "lab") -> None:
        meta = involved.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        now = rfc3339(self._clock())
        event = {
            "metadata": {"name": f"{meta.get('name', 'unknown')}.{uuid.uuid4().hex[:16]}",
                         "namespace": ns},
            "involvedObject": {"kind": involved.get("kind"),
                               "apiVersion": involved.get("apiVersion"),
                               "namespace": meta.get("namespace"), "name": meta.get("name"),
                               "uid": meta.get("uid"),
                               "resourceVersion": meta.get("resourceVersion")},
            "reason": reason, "message": message, "type": type_,
            "source": {"component": component}, "firstTimestamp": now, "lastTimestamp": now,
            "count": 1, "reportingComponent": component, "reportingInstance": self.cluster,
        }
        try:
            await self.create(_EVENT_KIND, event, namespace=ns)
        except (NotFound, Forbidden):
            pass  # the namespace is gone or going: real event recorders drop such events too

    async def close(self) -> None:
        """End every watch and background task (namespace cleanup)."""
        self._closed = True
        for watcher in list(self._watchers):
            watcher.queue.put_nowait(None)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- helpers -------------------------------------------------------------------------

    def _what(self, res: ResourceKind) -> str:
        return f"{res.plural}.{res.group}" if res.group else res.plural

    def _current(self, res: ResourceKind, name: str, ns: str | None) -> Obj:
        obj = self._objects.get(_key(res), {}).get(((ns or "") if res.namespaced else "", name))
        if obj is None:
            raise NotFound(f'{self._what(res)} "{name}" not found',
                           details={"name": name, "group": res.group, "kind": res.plural})
        return obj

    def _view(self, res: ResourceKind, obj: Obj) -> Obj:
        # One storage serves every version of a CRD: the view names the version asked for.
        rest = copy.deepcopy({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
        return {"apiVersion": res.api_version, "kind": res.kind, **rest}

    async def _admit(self, res: ResourceKind, op: str, obj: Obj, old: Obj | None = None) -> Obj:
        apply_defaults(res, obj)
        for hook in self._hooks:
            obj = await hook(res, op, obj)
        apply_defaults(res, obj)
        if old is not None:
            # Identity fields are the server's; a client may echo them but not change them.
            meta, old_meta = _meta(obj), _meta(old)
            for key in ("uid", "creationTimestamp", "deletionTimestamp",
                        "deletionGracePeriodSeconds", "generation"):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
        validate(res, obj)
        return obj

    def _check_namespace_open(self, ns: str, res: ResourceKind, name: str) -> None:
        nsobj = self._objects.get(("", "namespaces"), {}).get(("", ns))
        if nsobj is None:
            raise NotFound(f'namespaces "{ns}" not found',
                           details={"name": ns, "kind": "namespaces"})
        if _meta(nsobj).get("deletionTimestamp"):
            raise Forbidden(f'{self._what(res)} "{name}" is forbidden: unable to create new '
                            f'content in namespace {ns} because it is being terminated',
                            details={"name": name, "group": res.group, "kind": res.plural,
                                     "causes": [{"reason": "NamespaceTerminating",
                                                 "message": f"namespace {ns} is being "
                                                 "terminated", "field": "metadata.namespace"}]})

    def _commit(self, res: ResourceKind, type_: str, obj: Obj, old: Obj | None) -> None:
        self._rv += 1
        meta = _meta(obj)
        meta["resourceVersion"] = str(self._rv)
        if type_ != "DELETED":
            self._objects.setdefault(_key(res), {})[
                (meta.get("namespace", "") if res.namespaced else "", meta["name"])] = obj
        if len(self._history) == self._history.maxlen:
            self._compacted = self._history[0].rv
        change = _Change(self._rv, _key(res), type_, obj, old)
        self._history.append(change)
        for watcher in list(self._watchers):
            if watcher.key == change.key:
                event = watcher.translate(type_, obj, old)
                if event is not None:
                    watcher.queue.put_nowait(WatchEvent(event.type, self._view(res, event.object)))

    def _commit_update(self, res: ResourceKind, new: Obj, ns: str | None, name: str, *,
                       dry_run: bool, keep_status: bool) -> tuple[Obj, Obj | None]:
        """Store ``new``; returns its view and, when the write released the last finalizer
        of an object being deleted, the removed object (its dependents are to be collected)."""
        cur = self._current(res, name, ns)  # again: admission may have awaited
        meta, cur_meta = _meta(new), _meta(cur)
        want = meta.get("resourceVersion")
        if want and want != cur_meta["resourceVersion"]:
            raise Conflict(f'Operation cannot be fulfilled on {self._what(res)} "{name}": the '
                           "object has been modified; please apply your changes to the latest "
                           "version and try again",
                           details={"name": name, "group": res.group, "kind": res.plural})
        if keep_status and "status" in res.subresources:
            if "status" in cur:
                new["status"] = copy.deepcopy(cur["status"])
            else:
                new.pop("status", None)
        meta["resourceVersion"] = cur_meta["resourceVersion"]
        meta["generation"] = cur_meta.get("generation", 1)
        if _spec_part(new) != _spec_part(cur):
            meta["generation"] += 1
        if new == cur or dry_run:
            return self._view(res, new), None
        if _key(res) == (_CRD_GROUP, "customresourcedefinitions"):
            self._register_crd(new)
        self._commit(res, "MODIFIED", new, cur)
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not (
                _key(res) == ("", "pods") and meta.get("deletionGracePeriodSeconds")):
            self._remove(res, new)
            return self._view(res, new), new
        return self._view(res, new), None

    def _remove(self, res: ResourceKind, obj: Obj) -> None:
        meta = _meta(obj)
        bucket = self._objects.get(_key(res), {})
        bucket.pop((meta.get("namespace", "") if res.namespaced else "", meta["name"]), None)
        self._commit(res, "DELETED", copy.deepcopy(obj), obj)
        if _key(res) == ("", "services"):
            self._addresses.release(obj)
        if _key(res) == (_CRD_GROUP, "customresourcedefinitions"):
            self._unregister_crd(obj)

    def _pod_grace(self, pod: Obj, requested: int | None) -> int:
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        # Pods never scheduled, or already finished, have no process to stop: gone at once
        # (pkg/registry/core/pod/strategy.go CheckGracefulDelete).
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        grace = requested if requested is not None else spec.get(
            "terminationGracePeriodSeconds", 30)
        return max(0, int(grace))

    async def _collect_dependents(self, owner: Obj, policy: str | None) -> None:
        uid = _meta(owner).get("uid")
        if not uid:
            return
        for res in list(self.table.storage_kinds()):
            for obj in list(self._objects.get(_key(res), {}).values()):
                refs = _meta(obj).get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs):
                    continue
                name, ns = _meta(obj)["name"], _meta(obj).get("namespace")
                try:
                    if policy == "Orphan":
                        await self.mutate(res, name, _drop_owner(uid), namespace=ns)
                    else:
                        await self.delete(res, name, namespace=ns)
                except NotFound:
                    continue

    def _spawn(self, coro: Any) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- watch ---------------------------------------------------------------------------

    async def _watch(self, res: ResourceKind, watcher: _Watcher,
                     resource_version: str) -> AsyncIterator[WatchEvent]:
        initial: list[WatchEvent] = []
        if resource_version in ("", "0"):
            for obj in sorted(self._objects.get(watcher.key, {}).values(),
                              key=lambda o: (_meta(o).get("namespace", ""), _meta(o)["name"])):
                if watcher.matches(obj):
                    initial.append(WatchEvent("ADDED", self._view(res, obj)))
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise BadRequest(f'invalid resource version "{resource_version}" for a watch '
                                 f"of {self._what(res)}") from None
            if since < self._compacted:
                yield WatchEvent("ERROR", status_object(
                    410, "Expired", f"too old resource version: {since} ({self._compacted + 1})"))
                return
            for change in self._history:
                if change.rv > since and change.key == watcher.key:
                    event = watcher.translate(change.type, change.obj, change.old)
                    if event is not None:
                        initial.append(WatchEvent(event.type, self._view(res, event.object)))
        if self._closed:
            return
        self._watchers.add(watcher)
        try:
            for event in initial:
                yield event
            while True:
                item = await watcher.queue.get()
                if item is None:
                    return
                yield item
        finally:
            self._watchers.discard(watcher)

    # -- kind-specific behaviour of the real API server --------------------------------------

    def _on_create(self, res: ResourceKind, obj: Obj) -> None:
        key = _key(res)
        if key == ("", "services"):
            self._addresses.allocate(obj, self._objects.get(key, {}).values())
        elif key == ("batch", "jobs"):
            default_job_selector(obj)
        elif key == (_CRD_GROUP, "customresourcedefinitions"):
            obj["status"] = crd_status(obj, rfc3339(self._clock()))

    async def _after_create(self, res: ResourceKind, obj: Obj) -> None:
        key = _key(res)
        if key == ("", "namespaces"):
            await self._default_service_account(_meta(obj)["name"])
        elif key == (_CRD_GROUP, "customresourcedefinitions"):
            self._register_crd(obj)

    async def _default_service_account(self, ns: str) -> None:
        try:
            await self.create(_SA_KIND, {"metadata": {"name": "default"}}, namespace=ns)
        except (AlreadyExists, NotFound, Forbidden):
            pass

    def _bootstrap_namespace(self, ns: str) -> None:
        seeds: list[tuple[ResourceKind, Obj]] = [
            (_NAMESPACE_KIND, {"metadata": {"name": ns}}),
            (_SA_KIND, {"metadata": {"name": "default", "namespace": ns}})]
        for res, obj in seeds:
            apply_defaults(res, obj)
            obj["apiVersion"], obj["kind"] = res.api_version, res.kind
            meta = _meta(obj)
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=rfc3339(self._clock()),
                        generation=1)
            self._commit(res, "ADDED", obj, None)

    def _start_namespace_deletion(self, ns_obj: Obj) -> Obj:
        if _meta(ns_obj).get("deletionTimestamp"):
            return self._view(_NAMESPACE_KIND, ns_obj)
        marked = copy.deepcopy(ns_obj)
        _meta(marked)["deletionTimestamp"] = rfc3339(self._clock())
        _meta(marked)["deletionGracePeriodSeconds"] = 0
        marked.setdefault("status", {})["phase"] = "Terminating"
        self._commit(_NAMESPACE_KIND, "MODIFIED", marked, ns_obj)
        self._spawn(self._drain_namespace(_meta(marked)["name"]))
        return self._view(_NAMESPACE_KIND, marked)

    async def _drain_namespace(self, ns: str) -> None:
        """Delete everything in ``ns``, wait for graceful pods to be finalized, then the
        namespace itself (what the namespace controller does)."""
        namespaced = [r for r in self.table.storage_kinds() if r.namespaced]
        for res in namespaced:
            for (obj_ns, name) in list(self._objects.get(_key(res), {})):
                if obj_ns == ns:
                    try:
                        await self.delete(res, name, namespace=ns)
                    except NotFound:
                        pass
        while any(obj_ns == ns for res in namespaced
                  for (obj_ns, _) in self._objects.get(_key(res), {})):
            # Pods on their grace period: the kubelet finalizes them.
            await asyncio.sleep(0.05)
        current = self._objects.get(("", "namespaces"), {}).get(("", ns))
        if current is not None:
            self._remove(_NAMESPACE_KIND, current)

    def _register_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        self.table.remove_group_resource(spec.get("group", ""),
                                         (spec.get("names") or {}).get("plural", ""))
        for info in crd_resources(crd):
            self.table.add(info)

    def _unregister_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        group, plural = spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        kinds = [i.res for i in self.table.infos() if (i.res.group, i.res.plural) == (group,
                                                                                        plural)]
        self.table.remove_group_resource(group, plural)
        if kinds:
            for obj in list(self._objects.get((group, plural), {}).values()):
                self._remove(kinds[0], obj)
        self._objects.pop((group, plural), None)


def _drop_owner(uid: str) -> Callable[[Obj], None]:
    def change(obj: Obj) -> None:
        meta = _meta(obj)
        meta["ownerReferences"] = [r for r in meta.get("ownerReferences") or []
                                   if r.get("uid") != uid]
        if not meta["ownerReferences"]:
            del meta["ownerReferences"]
    return change
