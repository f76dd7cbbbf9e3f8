"""The kubelet: runs the pods scheduled to its node as OS processes.

It also schedules (the lab has one node per cluster, so every unscheduled pod is
bound to it) and implements :class:`~meshproof.lab.kube.interfaces.PodRuntime` for
the API server (exec, logs, pod addresses). One :class:`PodWorker` per pod owns
the pod process, the containers' restart policy and probes, and writes
``status`` back through the store.

Files of a pod: ``<lab dir>/pods/<cluster>/<ns>/<pod>/`` with ``pid`` (the pod
process), ``logs/<container>.log`` (+ ``.previous.log``), ``volumes/``, ``ctx/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from meshproof.lab.kube.controllers.base import record_event
from meshproof.lab.kube.interfaces import ExecSession, Invalid, NotFound, ObjectStore
from meshproof.lab.kube.kubelet.execs import spawn_exec
from meshproof.lab.kube.kubelet.ipam import AddressPool
from meshproof.lab.kube.kubelet.tokens import TokenIssuer
from meshproof.lab.kube.kubelet.worker import PodWorker

__all__ = ["Kubelet"]

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class Kubelet:
    """The node agent of one lab cluster; also the API server's ``PodRuntime``."""

    def __init__(self, store: ObjectStore, *, cluster: str, node_name: str, node_ip: str,
                 pod_pool: AddressPool, lab_dir: Path, ca_pem: bytes = b"",
                 api_host: str = "127.0.0.1", api_port: int = 0) -> None:
        self.store = store
        self.cluster = cluster
        self.node_name = node_name
        self.node_ip = node_ip
        self.pod_pool = pod_pool
        self.lab_dir = lab_dir
        self.ca_pem = ca_pem
        self.api_host = api_host
        self.api_port = api_port
        self.pods_res = store.kind_for("v1", "Pod")
        self.tokens = TokenIssuer(cluster)
        """Signs the pods' service-account tokens; its ``authenticate`` goes to the API server."""
        self.workers: dict[str, PodWorker] = {}  # by uid
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    def pods_dir(self) -> Path:
        return self.lab_dir / "pods" / self.cluster

    # -- lifecycle ---------------------------------------------------------------------
    async def run(self) -> None:
        """Watch pods (re-listing whenever the watch ends) until cancelled."""
        resync = asyncio.create_task(self._resync_loop())
        try:
            while not self._stopping:
                try:
                    async for ev in self.store.watch(self.pods_res):
                        await self._on_pod(ev.type, ev.object)
                except asyncio.CancelledError:
                    raise
                except Exception:  # a broken watch is re-opened, as client-go's reflector does
                    log.exception("%s: pod watch failed; re-listing", self.cluster)
                await asyncio.sleep(0.5)
        finally:
            resync.cancel()

    async def _resync_loop(self) -> None:
        """Catch what a watch may have missed: pods gone from the store stop running."""
        while True:
            await asyncio.sleep(5)
            try:
                items, _ = await self.store.list(self.pods_res)
            except Exception:
                log.exception("%s: pod resync failed", self.cluster)
                continue
            live = {p["metadata"].get("uid") for p in items}
            for uid, worker in list(self.workers.items()):
                if uid not in live:
                    worker.request_stop(0, finalize=False)
            for pod in items:
                await self._on_pod("MODIFIED", pod)

    async def stop(self, *, grace: float = 2.0) -> None:
        """Stop every pod (SIGTERM, then SIGKILL after ``grace``) without touching the store."""
        self._stopping = True
        workers = list(self.workers.values())
        for w in workers:
            w.request_stop(grace, finalize=False)
        if workers:
            await asyncio.wait([asyncio.ensure_future(w.done.wait()) for w in workers],
                               timeout=grace + 5)
        for w in workers:
            w.kill_now()

    # -- scheduling and pod events --------------------------------------------------------
    async def _on_pod(self, type_: str, pod: Obj) -> None:
        meta = pod.get("metadata", {})
        uid = meta.get("uid", "")
        worker = self.workers.get(uid)
        if type_ == "DELETED":
            if worker:
                worker.request_stop(0, finalize=False)
            return
        node = pod.get("spec", {}).get("nodeName")
        if not node:
            if not meta.get("deletionTimestamp"):
                await self._schedule(pod)
            return
        if node != self.node_name:
            return
        if meta.get("deletionTimestamp"):
            if worker is None:
                with contextlib.suppress(NotFound):
                    await self.store.finalize(self.pods_res, meta["name"],
                                              namespace=meta.get("namespace"))
            else:
                worker.request_stop(float(meta.get("deletionGracePeriodSeconds") or 0),
                                    finalize=True)
            return
        if worker is None:
            if self._stopping or pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                return
            # A pod recreated under the same name (StatefulSets, force deletion) shares the
            # directory: it starts once the old one has stopped and cleaned up.
            previous = next((w for w in self.workers.values()
                             if (w.namespace, w.name) == (meta.get("namespace", "default"),
                                                          meta.get("name"))), None)
            worker = PodWorker(self, pod, predecessor=previous)
            self.workers[uid] = worker
            task = asyncio.create_task(worker.run(), name=f"pod {meta.get('name')}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            worker.pod = pod

    async def _schedule(self, pod: Obj) -> None:
        meta = pod["metadata"]

        def bind(obj: Obj) -> None:
            obj.setdefault("spec", {})["nodeName"] = self.node_name

        try:
            bound = await self.store.mutate(self.pods_res, meta["name"], bind,
                                            namespace=meta.get("namespace"))
            await record_event(
                self.store, bound, reason="Scheduled", type_="Normal",
                component="default-scheduler",
                message=f"Successfully assigned {meta.get('namespace')}/{meta['name']} "
                        f"to {self.node_name}")
        except NotFound:
            return

    def forget(self, worker: PodWorker) -> None:
        if self.workers.get(worker.uid) is worker:
            del self.workers[worker.uid]

    # -- PodRuntime ------------------------------------------------------------------------
    def _worker(self, namespace: str, pod: str) -> PodWorker:
        for w in self.workers.values():
            if w.namespace == namespace and w.name == pod and not w.done.is_set():
                return w
        raise NotFound(f'pods "{pod}" not found', details={"name": pod, "kind": "pods"})

    def pod_address(self, namespace: str, pod: str) -> str:
        w = self._worker(namespace, pod)
        if not w.ip:
            raise NotFound(f'pod "{pod}" in namespace {namespace} has no IP yet '
                           f'(cluster {self.cluster})')
        return w.ip

    def log_path(self, namespace: str, pod: str, container: str, *,
                 previous: bool = False) -> Path:
        w = self._worker(namespace, pod)
        c = w.container(container)
        path = c.previous_log if previous else c.log
        if not path.exists():
            if previous:
                raise Invalid(f'previous terminated container "{c.name}" in pod "{pod}" '
                              f"not found")
            reason = (c.state.get("waiting") or {}).get("reason", "ContainerCreating")
            raise Invalid(f'container "{c.name}" in pod "{pod}" is waiting to start: {reason}')
        return path

    async def exec(self, namespace: str, pod: str, container: str, command: Sequence[str], *,
                   stdin: bool = False, tty: bool = False) -> ExecSession:
        w = self._worker(namespace, pod)
        c = w.container(container)
        if c.pid is None or c.env is None:
            raise Invalid(f'container "{c.name}" in pod "{pod}" (namespace {namespace}, '
                          f"cluster {self.cluster}) is not running")
        return await spawn_exec(list(command), env=c.env, cwd=c.cwd, bin_dir=c.bin_dir,
                                mounts=c.mounts, stdin=stdin, tty=tty)
