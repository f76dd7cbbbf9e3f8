"""One pod on the lab's node: its process (the sandbox), volumes, containers and status.

A pod process that dies (``kill -9``) takes its containers with it and they are
restarted with ``restartCount + 1``; deletion runs preStop hooks, sends SIGTERM and
SIGKILL after the grace period, then finalizes the pod in the store.

Sidecar containers (init containers with ``restartPolicy: Always``, KEP-753) start in
their place among the init containers: the next one starts once the sidecar has started
(running, and past its startup probe), and they keep running beside the app containers.
Their readiness counts in the pod's Ready condition. On deletion every container's preStop
hook runs at once; the app containers get SIGTERM first, and the sidecars only after the
app containers have exited, in reverse order (``kuberuntime_termination_order.go``).
References: kubernetes/kubernetes ``pkg/kubelet/kuberuntime/kuberuntime_manager.go``,
``pkg/kubelet/kuberuntime/kuberuntime_container.go`` ``killContainersWithSyncResult``,
``pkg/kubelet/status/status_manager.go``, ``pkg/kubelet/status/generate.go``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshproof.lab.kube.controllers.base import record_event
from meshproof.lab.kube.interfaces import NotFound, StoreError
from meshproof.lab.kube.kubelet import launch
from meshproof.lab.kube.kubelet.containers import ContainerRun, now_rfc3339
from meshproof.lab.kube.kubelet.volumes import ConfigError, materialize_volumes

if TYPE_CHECKING:
    from meshproof.lab.kube.kubelet.runtime import Kubelet

__all__ = ["PodWorker"]

log = logging.getLogger(__name__)
Obj = dict[str, Any]

VOLUME_SYNC = 10.0  # the real kubelet syncs about every minute; the lab is quicker


class PodWorker:
    """Runs one pod until it is deleted (or the kubelet stops)."""

    def __init__(self, kubelet: Kubelet, pod: Obj, *,
                 predecessor: PodWorker | None = None) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.predecessor = predecessor
        meta = pod["metadata"]
        self.name = str(meta["name"])
        self.namespace = str(meta.get("namespace", "default"))
        self.uid = str(meta.get("uid", ""))
        self.dir = kubelet.pods_dir() / self.namespace / self.name
        self.ip = ""
        self.volumes: dict[str, Path] = {}
        spec = pod.get("spec", {})
        self.init_containers = [ContainerRun(self, c, init=True)
                                for c in spec.get("initContainers") or []]
        self.containers = [ContainerRun(self, c) for c in spec.get("containers") or []]
        self.sandbox_ready = asyncio.Event()
        self.sandbox_pid: int | None = None
        self.initialized = not self.init_containers
        self.stopping = False
        self.finalize = False
        self.grace = 0.0
        self.done = asyncio.Event()
        self._stop = asyncio.Event()
        self._dirty = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._start_time = now_rfc3339()
        self._conditions: dict[str, tuple[str, str]] = {}
        self._events_once: set[tuple[str, str]] = set()
        self._sandbox_ok = False

    # -- helpers for containers ------------------------------------------------------------
    def container(self, name: str) -> ContainerRun:
        runs = self.containers + self.init_containers
        if not name:
            return self.containers[0]
        for c in runs:
            if c.name == name:
                return c
        raise NotFound(f"container {name} is not valid for pod {self.name}",
                       details={"name": self.name, "kind": "pods"})

    def changed(self) -> None:
        self._dirty.set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep, or return True early when the pod is being stopped."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self.stopping

    def send(self, cmd: Obj) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write((json.dumps(cmd) + "\n").encode())

    async def event(self, reason: str, message: str, *, warning: bool = False,
                    once: bool = False, component: str = "kubelet") -> None:
        if once:
            if (reason, message) in self._events_once:
                return
            self._events_once.add((reason, message))
        involved = dict(self.pod)
        involved.setdefault("kind", "Pod")
        involved.setdefault("apiVersion", "v1")
        try:
            await record_event(self.kubelet.store, involved, reason=reason, message=message,
                               type_="Warning" if warning else "Normal", component=component)
        except StoreError as exc:
            # Refused (e.g. the namespace is terminating): the kubelet's recorder drops it too.
            log.debug("event %s for pod %s/%s dropped: %s", reason, self.namespace, self.name,
                      exc)
        except Exception:
            log.exception("event %s for pod %s/%s", reason, self.namespace, self.name)

    # -- stop -------------------------------------------------------------------------------
    def request_stop(self, grace: float, *, finalize: bool) -> None:
        self.finalize = self.finalize or finalize
        if not self.stopping:
            self.grace = grace
            self.stopping = True
            self._stop.set()
            self.sandbox_ready.set()  # wake containers waiting for a sandbox; they see stopping
        else:
            self.grace = min(self.grace, grace)

    def kill_now(self) -> None:
        if self.sandbox_pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.sandbox_pid, signal.SIGKILL)

    # -- the pod's life ----------------------------------------------------------------------
    async def run(self) -> None:
        k = self.kubelet
        publisher = asyncio.create_task(self._publish_loop())
        tasks: list[asyncio.Task[Any]] = []
        try:
            if self.predecessor is not None:
                await self.predecessor.done.wait()
                self.predecessor = None
            self.ip = k.pod_pool.allocate()
            (self.dir / "logs").mkdir(parents=True, exist_ok=True)
            self.changed()
            while not self.stopping:
                try:
                    self.volumes = await materialize_volumes(
                        k.store, self.pod, self.dir, lab_dir=k.lab_dir, cluster=k.cluster,
                        ca_pem=k.ca_pem, tokens=k.tokens)
                    break
                except ConfigError as exc:
                    await self.event("FailedMount", f"MountVolume.SetUp failed: {exc}",
                                     warning=True, once=True)
                    await self.sleep(1.0)
            if not self.stopping:
                sandbox = asyncio.create_task(self._sandbox_loop())
                tasks += [sandbox, asyncio.create_task(self._sync_volumes())]
                for c in self.init_containers:
                    if c.sidecar:
                        tasks.append(asyncio.create_task(c.run()))
                        if not await self._started(c):
                            break
                        continue
                    code = await c.run()
                    if code != 0 or self.stopping:
                        break
                else:
                    self.initialized = True
                    self.changed()
                    tasks += [asyncio.create_task(c.run()) for c in self.containers]
            await self._stop.wait()
            await self._terminate(tasks)
        except Exception:
            log.exception("pod %s/%s in %s failed", self.namespace, self.name, k.cluster)
            self.kill_now()
        finally:
            publisher.cancel()
            for t in tasks:
                t.cancel()
            if self.ip:
                k.pod_pool.release(self.ip)
            # Files go before the object: a same-named successor may be created right after.
            await asyncio.to_thread(_remove, self.dir)
            k.forget(self)
            if self.finalize:
                with contextlib.suppress(NotFound):
                    await k.store.finalize(k.pods_res, self.name, namespace=self.namespace)
            self.done.set()

    async def _started(self, c: ContainerRun) -> bool:
        """Wait until a sidecar has started; False when the pod is being stopped first."""
        stop = asyncio.create_task(self._stop.wait())
        started = asyncio.create_task(c.became_started.wait())
        try:
            await asyncio.wait({stop, started}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            started.cancel()
        return not self.stopping

    @property
    def sidecars(self) -> list[ContainerRun]:
        return [c for c in self.init_containers if c.sidecar]

    async def _sync_volumes(self) -> None:
        """Keep ConfigMap / Secret / token files current, as the kubelet's periodic sync does
        (a missing object leaves the last files in place)."""
        k = self.kubelet
        while not await self.sleep(VOLUME_SYNC):
            try:
                await materialize_volumes(k.store, self.pod, self.dir, lab_dir=k.lab_dir,
                                          cluster=k.cluster, ca_pem=k.ca_pem, tokens=k.tokens)
            except ConfigError:
                continue
            except Exception:
                log.exception("volume sync of pod %s/%s", self.namespace, self.name)

    async def _terminate(self, tasks: list[asyncio.Task[Any]]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(self.grace, 0.1)
        running = [c for c in self.containers + self.sidecars if c.pid is not None]
        for c in running:
            await self.event("Killing", f"Stopping container {c.name}")
        # preStop hooks run before SIGTERM, within the grace period.
        hooks = [asyncio.create_task(c.run_hook("preStop", timeout=max(self.grace, 0.1)))
                 for c in running if (c.spec.get("lifecycle") or {}).get("preStop")]
        if hooks:
            await asyncio.wait(hooks, timeout=max(self.grace, 0.1))
        if self.sidecars:
            await self._stop_in_order(deadline)
        proc = self._proc
        if proc is not None and proc.returncode is None and self.sandbox_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.sandbox_pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), max(self.grace, 0.1))
            except TimeoutError:
                pass
        self.kill_now()
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 5)
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    async def _stop_in_order(self, deadline: float) -> None:
        """SIGTERM the app containers, wait for them to exit, then each sidecar in reverse
        order; whatever is left when the grace period ends goes with the pod process."""
        loop = asyncio.get_running_loop()
        groups = [[c for c in self.containers if c.pid is not None]]
        groups += [[c] for c in reversed(self.sidecars) if c.pid is not None]
        for group in groups:
            for c in group:
                self.send({"op": "signal", "name": c.name, "sig": int(signal.SIGTERM)})
            while any(c.pid is not None for c in group) and loop.time() < deadline:
                await asyncio.sleep(0.05)
            if loop.time() >= deadline:
                return

    async def _sandbox_loop(self) -> None:
        """Keep a pod process running; when it dies, its containers die and restart."""
        log_file = self.dir / "logs" / "_pod.log"
        first = True
        while not self.stopping:
            # The pod process asks for SIGTERM on its parent's death itself (prctl), so
            # nothing runs between fork and exec here, where the daemon has threads.
            err = await asyncio.to_thread(open, log_file, "ab")
            try:
                proc = await asyncio.create_subprocess_exec(
                    *launch.pod_process_argv(), env=launch.pod_process_env(),
                    cwd=str(self.dir), stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE, stderr=err, start_new_session=True)
            finally:
                err.close()
            self._proc = proc
            self.sandbox_pid = proc.pid
            (self.dir / "pid").write_text(f"{proc.pid}\n")
            if not first:
                await self.event("SandboxChanged",
                                 "Pod sandbox changed, it will be killed and re-created.")
            first = False
            assert proc.stdout is not None
            async for line in proc.stdout:
                self._dispatch(line)
            await proc.wait()
            self.sandbox_ready.clear() if not self.stopping else None
            self._sandbox_ok = False
            self.kill_now()
            for c in self.init_containers + self.containers:
                c.on_exited(137, sandbox_died=True)
            self.changed()
            if self.stopping:
                break
            await self.sleep(0.2)

    def _dispatch(self, line: bytes) -> None:
        try:
            ev = json.loads(line)
        except ValueError:
            return
        kind = ev.get("event")
        if kind == "sandbox":
            self._sandbox_ok = True
            self.sandbox_ready.set()
            self.changed()
            return
        by_name = {c.name: c for c in self.init_containers + self.containers}
        c = by_name.get(str(ev.get("name")))
        if c is None:
            return
        if kind == "started":
            c.on_started(int(ev["pid"]))
        elif kind == "failed":
            c.on_failed(str(ev.get("error", "")))
        elif kind == "exited":
            c.on_exited(int(ev.get("code", 1)))

    # -- status ------------------------------------------------------------------------------
    def _cond(self, type_: str, ok: bool, reason: str = "") -> Obj:
        status = "True" if ok else "False"
        prev = self._conditions.get(type_)
        when = prev[1] if prev and prev[0] == status else now_rfc3339()
        self._conditions[type_] = (status, when)
        cond: Obj = {"type": type_, "status": status, "lastProbeTime": None,
                     "lastTransitionTime": when}
        if reason and not ok:
            cond["reason"] = reason
        return cond

    def _phase(self) -> str:
        if not self.initialized:
            failed = any("terminated" in c.state and c.state["terminated"]["exitCode"] != 0
                         and not c._should_restart(c.state["terminated"]["exitCode"])
                         for c in self.init_containers)
            return "Failed" if failed else "Pending"
        states = [c.state for c in self.containers]
        if self.containers and all("terminated" in s for s in states) and \
                not any(c._should_restart(s["terminated"]["exitCode"])
                        for c, s in zip(self.containers, states, strict=True)):
            return "Succeeded" if all(s["terminated"]["exitCode"] == 0 for s in states) \
                else "Failed"
        if any(c.restart_count or "running" in c.state or "terminated" in c.state
               for c in self.containers):
            return "Running"
        return "Pending"

    def status(self) -> Obj:
        k = self.kubelet
        counted = self.sidecars + self.containers
        ready = bool(self.containers) and all(c.ready for c in counted)
        not_ready = [c.name for c in counted if not c.ready]
        phase = self._phase()
        conditions = [
            self._cond("PodReadyToStartContainers", self._sandbox_ok),
            self._cond("Initialized", self.initialized, "ContainersNotInitialized"),
            self._cond("Ready", ready and phase == "Running", "ContainersNotReady"),
            self._cond("ContainersReady", ready and phase == "Running", "ContainersNotReady"),
            self._cond("PodScheduled", True),
        ]
        for cond in conditions[2:4]:
            if cond["status"] == "False":
                cond["message"] = f"containers with unready status: [{' '.join(not_ready)}]"
        status: Obj = {
            "phase": phase, "conditions": conditions, "hostIP": k.node_ip,
            "hostIPs": [{"ip": k.node_ip}], "startTime": self._start_time,
            "containerStatuses": [c.status() for c in self.containers],
            "qosClass": "BestEffort",
        }
        if self.ip:
            status["podIP"] = self.ip
            status["podIPs"] = [{"ip": self.ip}]
        if self.init_containers:
            status["initContainerStatuses"] = [c.status() for c in self.init_containers]
        return status

    async def _publish_loop(self) -> None:
        k = self.kubelet
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            status = self.status()

            def put(obj: Obj, status: Obj = status) -> None:
                obj["status"] = {**obj.get("status", {}), **status}

            try:
                self.pod = await k.store.mutate(k.pods_res, self.name, put,
                                                namespace=self.namespace, subresource="status")
            except NotFound:
                self.request_stop(0, finalize=False)
                return
            except Exception:
                log.exception("status of pod %s/%s", self.namespace, self.name)
            # Coalesce bursts of changes into one write per tick.
            await asyncio.sleep(0.05)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
