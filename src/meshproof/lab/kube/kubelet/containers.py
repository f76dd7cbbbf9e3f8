"""One container of a pod across its restarts: start, probes, hooks, restart policy.

Restart semantics follow the kubelet: ``restartPolicy`` Always / OnFailure / Never,
``restartCount``, ``lastState.terminated``, CrashLoopBackOff with a doubling back-off
(lab-short: 0.5 s doubling to at most 5 s, reset after 10 s of running).

An init container with ``restartPolicy: Always`` is a sidecar (KEP-753, GA in Kubernetes
1.33): it is restarted whenever it exits, whatever the pod's policy, has probes like an
app container, and its status carries ``started`` and ``ready``
(``pkg/kubelet/prober/prober_manager.go`` ``UpdatePodStatus``). A plain init container
reports ``started`` too, and ``ready`` once it has completed.
References: kubernetes/kubernetes ``pkg/kubelet/kuberuntime/kuberuntime_container.go``,
``pkg/kubelet/prober/``, ``pkg/kubelet/lifecycle/handlers.go``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshproof.lab import images
from meshproof.lab.images.context import ContainerContext
from meshproof.lab.kube.kubelet import launch
from meshproof.lab.kube.kubelet.execs import spawn_exec
from meshproof.lab.kube.kubelet.probes import ProbeTiming, run_probe
from meshproof.lab.kube.kubelet.volumes import ConfigError, container_mounts, resolve_env

if TYPE_CHECKING:
    from meshproof.lab.kube.kubelet.worker import PodWorker

__all__ = ["ContainerRun", "now_rfc3339"]

Obj = dict[str, Any]

BACKOFF_START = 0.5
BACKOFF_CAP = 5.0
BACKOFF_RESET_AFTER = 10.0
MINIMUM_GRACE_PERIOD = 2.0
"""The kubelet's ``minimumGracePeriodInSeconds``: a kill always allows this long."""
GRACE_PERIOD_CAP = 5.0
"""Lab-short: a probe kill waits at most this long for SIGTERM to end the container."""


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ContainerRun:
    """One container of a pod, across its restarts."""

    def __init__(self, worker: PodWorker, spec: Obj, *, init: bool = False) -> None:
        self.worker = worker
        self.spec = spec
        self.name = str(spec["name"])
        self.image = str(spec.get("image", ""))
        self.init = init
        self.sidecar = init and spec.get("restartPolicy") == "Always"
        self.restart_count = 0
        self.state: Obj = {"waiting": {"reason": "ContainerCreating" if not init
                                       else "PodInitializing"}}
        self.last_state: Obj = {}
        self.ready = False
        self.started = False
        self.pid: int | None = None
        self.env: dict[str, str] | None = None
        self.cwd = "/"
        self.bin_dir = Path("/nonexistent")
        self.mounts: dict[str, str] = {}
        self.program: images.Program | None = None
        logs = worker.dir / "logs"
        self.log = logs / f"{self.name}.log"
        self.previous_log = logs / f"{self.name}.previous.log"
        self._started: asyncio.Future[tuple[int | None, str]] | None = None
        self._exited: asyncio.Future[tuple[int, bool]] | None = None
        self.became_started = asyncio.Event()
        """Set each time the container counts as started (running and past its startup
        probe); the kubelet starts the next init container of a pod only then."""

    # -- events from the pod process --------------------------------------------------------
    def on_started(self, pid: int) -> None:
        if self._started and not self._started.done():
            self._started.set_result((pid, ""))

    def on_failed(self, error: str) -> None:
        if self._started and not self._started.done():
            self._started.set_result((None, error))

    def on_exited(self, code: int, *, sandbox_died: bool = False) -> None:
        self.on_failed("the pod sandbox exited")
        if self._exited and not self._exited.done():
            self._exited.set_result((code, sandbox_died))

    def status(self) -> Obj:
        out: Obj = {
            "name": self.name, "image": self.image,
            "imageID": f"{images.repository_of(self.image)}@sha256:"
                       f"{hashlib.sha256(self.image.encode()).hexdigest()}",
            "ready": self.ready, "restartCount": self.restart_count,
            "started": self.started, "state": self.state, "lastState": self.last_state,
        }
        if self.pid is not None:
            out["containerID"] = f"lab://{self.pid}"
        elif "terminated" in self.state and self.state["terminated"].get("containerID"):
            out["containerID"] = self.state["terminated"]["containerID"]
        if self.init and not self.sidecar:
            done = self.state.get("terminated") or {}
            out["ready"] = "exitCode" in done and done["exitCode"] == 0
        return out

    def _set_started(self, started: bool) -> None:
        self.started = started
        if started:
            self.became_started.set()
        else:
            self.became_started.clear()

    # -- the container's life ---------------------------------------------------------------
    async def _resolve_image(self) -> images.Program:
        w = self.worker
        pulled_failed = False
        while True:
            program = images.lookup(self.image)
            if program is not None:
                if pulled_failed:
                    await w.event("Pulling", f'Pulling image "{self.image}"')
                return program
            if not pulled_failed:
                pulled_failed = True
                await w.event("Pulling", f'Pulling image "{self.image}"')
                self.state = {"waiting": {"reason": "ErrImagePull", "message": (
                    f'failed to pull and unpack image "{self.image}": failed to resolve '
                    f"reference: {self.image}: not found (no lab program registered for "
                    f"repository {images.repository_of(self.image)!r})")}}
                await w.event("Failed", f'Failed to pull image "{self.image}": '
                                        f"{self.state['waiting']['message']}", warning=True)
                await w.event("Failed", "Error: ErrImagePull", warning=True)
                w.changed()
                await w.sleep(1.0)
                self.state = {"waiting": {"reason": "ImagePullBackOff",
                                          "message": f'Back-off pulling image "{self.image}"'}}
                await w.event("BackOff", f'Back-off pulling image "{self.image}"', warning=True)
                await w.event("Failed", "Error: ImagePullBackOff", warning=True)
                w.changed()
            if await w.sleep(10.0):
                raise asyncio.CancelledError

    async def _prepare(self, program: images.Program) -> tuple[list[str], str]:
        """env, mounts, argv and the executable for the next start (raises ConfigError)."""
        w = self.worker
        spec_env = await resolve_env(w.kubelet.store, w.pod, self.spec)
        self.mounts = container_mounts(self.spec, w.volumes, pod_dir=w.dir)
        self.bin_dir = launch.image_bin_dir(w.kubelet.lab_dir, self.image, program)
        k = w.kubelet
        self.env = launch.container_env(
            spec_env, pod=w.pod, bin_dir=self.bin_dir, pod_dir=w.dir, pod_ip=w.ip,
            cluster=k.cluster, mounts=self.mounts, api_host=k.api_host, api_port=k.api_port,
            python_program=program.entry is not None, lab_dir=k.lab_dir, container=self.name)
        wd = self.spec.get("workingDir")
        self.cwd = launch.map_path(str(wd), self.mounts) if wd else str(w.dir / "home")
        if not os.path.isdir(self.cwd):
            self.cwd = str(w.dir / "home")
        argv = launch.map_args(launch.container_argv(self.spec, program, spec_env), self.mounts)
        if program.entry is not None:
            ctx = ContainerContext(
                cluster=k.cluster, namespace=w.namespace, pod=w.name, container=self.spec,
                argv=argv, env=self.env, pod_ip=w.ip, host_ip=k.node_ip, pod_dir=str(w.dir),
                mounts=self.mounts)
            ctx_file = w.dir / "ctx" / f"{self.name}.json"
            ctx_file.parent.mkdir(parents=True, exist_ok=True)
            data = json.loads(ctx.to_json())
            data["entry"] = program.entry
            ctx_file.write_text(json.dumps(data))
            argv = launch.python_launch_argv(ctx_file)
            return argv, argv[0]
        if not argv:
            raise ConfigError("CreateContainerConfigError",
                              f"no command specified for container {self.name}")
        exe = launch.resolve_executable(argv[0], bin_dir=self.bin_dir, mounts=self.mounts)
        return launch.exec_argv(argv, exe)

    async def run(self) -> int:
        """Start, watch and restart the container; returns its last exit code."""
        w = self.worker
        try:
            self.program = await self._resolve_image()
        except asyncio.CancelledError:
            return 1
        backoff = BACKOFF_START
        first = True
        while not w.stopping:
            await w.sandbox_ready.wait()
            if w.stopping:
                break
            try:
                argv, executable = await self._prepare(self.program)
            except ConfigError as exc:
                self.state = {"waiting": {"reason": "CreateContainerConfigError",
                                          "message": str(exc)}}
                w.changed()
                await w.event("Failed", f"Error: {exc}", warning=True, once=True)
                if await w.sleep(1.0):
                    break
                continue
            if not first:
                self.restart_count += 1
            first = False
            loop = asyncio.get_running_loop()
            self._started = loop.create_future()
            self._exited = loop.create_future()
            await w.event("Pulled", f'Container image "{self.image}" already present on '
                                    "machine and can be accessed by the pod")
            w.send({"op": "start", "name": self.name, "argv": argv, "executable": executable,
                    "env": self.env,
                    "cwd": self.cwd, "log": str(self.log)})
            await w.event("Created", f"Created container: {self.name}")
            pid, error = await self._started
            started_at = now_rfc3339()
            t0 = time.monotonic()
            probes: list[asyncio.Task[None]] = []
            if pid is not None:
                self.pid = pid
                self.state = {"running": {"startedAt": started_at}}
                await self.run_hook("postStart")
                await w.event("Started", f"Started container {self.name}")
                self._set_started("startupProbe" not in self.spec)
                probes = self._start_probes()
                if (not self.init or self.sidecar) and "readinessProbe" not in self.spec:
                    self.ready = self.started
                w.changed()
                code, sandbox_died = await self._exited
            else:
                await w.event("Failed", f"Error: failed to start container {self.name!r}: "
                                        f"{error}", warning=True)
                code, sandbox_died = 128, False
            for p in probes:
                p.cancel()
            terminated = {"exitCode": code, "reason": "Completed" if code == 0 else (
                "StartError" if pid is None else "Error"), "startedAt": started_at,
                "finishedAt": now_rfc3339()}
            if pid is not None:
                terminated["containerID"] = f"lab://{pid}"
            if pid is None:
                terminated["message"] = error
            self.pid = None
            self.ready = False
            self._set_started(False)
            self.state = {"terminated": terminated}
            # lastState is the termination before the current state: it moves only when the
            # container is started again.
            if w.stopping or not self._should_restart(code) or (
                    self.init and not self.sidecar and code == 0):
                w.changed()
                if w.stopping:
                    break
                return code
            self.last_state = {"terminated": terminated}
            # The restarted container writes a new log; this run's is kept as --previous.
            with contextlib.suppress(OSError):
                if self.log.exists():
                    os.replace(self.log, self.previous_log)
            if time.monotonic() - t0 > BACKOFF_RESET_AFTER:
                backoff = BACKOFF_START
            delay = 0.0 if sandbox_died else backoff
            backoff = min(backoff * 2, BACKOFF_CAP)
            if delay:
                self.state = {"waiting": {"reason": "CrashLoopBackOff", "message": (
                    f"back-off {delay:g}s restarting failed container={self.name} "
                    f"pod={w.name}_{w.namespace}({w.uid})")}}
                w.changed()
                await w.event("BackOff", "Back-off restarting failed container "
                                         f"{self.name} in pod {w.name}_{w.namespace}({w.uid})",
                              warning=True)
                if await w.sleep(delay):
                    break
            w.changed()
        return 137

    async def run_hook(self, which: str, *, timeout: float = 30.0) -> None:
        """Run ``lifecycle.postStart`` / ``preStop`` (exec or httpGet) and wait for it; a failed
        hook is reported, as FailedPostStartHook / FailedPreStopHook events."""
        handler = (self.spec.get("lifecycle") or {}).get(which)
        if not handler or self.pid is None:
            return
        handler = {**handler, "timeoutSeconds": timeout}
        if "sleep" in handler:
            await asyncio.sleep(min(float(handler["sleep"].get("seconds", 0)), timeout))
            return
        ok, why = await run_probe(handler, host=self.worker.ip, container=self.spec,
                                  exec_in_container=self._exec_for_probe)
        if not ok:
            reason = "FailedPostStartHook" if which == "postStart" else "FailedPreStopHook"
            await self.worker.event(reason, f"{which} hook for container {self.name} "
                                            f"failed: {why}", warning=True)

    def _should_restart(self, code: int) -> bool:
        policy = self.worker.pod.get("spec", {}).get("restartPolicy", "Always")
        if self.sidecar:
            return True
        if self.init:
            return code != 0 and policy != "Never"
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    # -- probes -------------------------------------------------------------------------------
    def _start_probes(self) -> list[asyncio.Task[None]]:
        if self.init and not self.sidecar:
            return []
        tasks = []
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            if kind in self.spec:
                tasks.append(asyncio.create_task(self._probe_loop(kind, self.spec[kind])))
        return tasks

    async def _exec_for_probe(self, command: Sequence[str], timeout: float) -> int:
        if self.env is None:
            return 1
        session = await spawn_exec(list(command), env=self.env, cwd=self.cwd, bin_dir=self.bin_dir,
                                   mounts=self.mounts)
        try:
            return await asyncio.wait_for(session.wait(), timeout)
        except TimeoutError:
            await session.kill()
            return 1

    async def _probe_loop(self, kind: str, probe: Obj) -> None:
        w = self.worker
        timing = ProbeTiming(probe)
        label = {"startupProbe": "Startup", "livenessProbe": "Liveness",
                 "readinessProbe": "Readiness"}[kind]
        await asyncio.sleep(timing.initial_delay)
        successes = failures = 0
        while True:
            if kind != "startupProbe" and not self.started:
                await asyncio.sleep(0.2)
                continue
            ok, why = await run_probe(probe, host=w.ip, container=self.spec,
                                      exec_in_container=self._exec_for_probe)
            successes, failures = (successes + 1, 0) if ok else (0, failures + 1)
            if not ok:
                await w.event("Unhealthy", f"{label} probe failed: {why}", warning=True,
                              once=True)
            if kind == "startupProbe":
                if ok:
                    self._set_started(True)
                    if "readinessProbe" not in self.spec:
                        self.ready = True
                    w.changed()
                    return
                if failures >= timing.failure_threshold:
                    await self._kill_for_probe(label.lower())
                    return
            elif kind == "livenessProbe":
                if failures >= timing.failure_threshold:
                    await self._kill_for_probe("liveness")
                    return
            elif kind == "readinessProbe":
                if ok and not self.ready and successes >= timing.success_threshold:
                    self.ready = True
                    w.changed()
                elif not ok and self.ready and failures >= timing.failure_threshold:
                    self.ready = False
                    w.changed()
            await asyncio.sleep(timing.period)

    def _probe_kill_grace(self, which: str) -> float:
        """Seconds between SIGTERM and SIGKILL when a ``which`` probe kills the container.

        As the kubelet's ``setTerminationGracePeriod`` and ``killContainer``
        (pkg/kubelet/kuberuntime/kuberuntime_container.go; KEP-2238, GA in 1.27): the
        probe's own ``terminationGracePeriodSeconds`` when set, else the pod's, and never
        less than ``minimumGracePeriodInSeconds`` (2 s); the lab caps it at 5 s.
        """
        pod_grace = (self.worker.pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        probe = self.spec.get(f"{which}Probe") or {}
        grace = probe.get("terminationGracePeriodSeconds")
        seconds = float(pod_grace if grace is None else grace)
        return min(max(seconds, MINIMUM_GRACE_PERIOD), GRACE_PERIOD_CAP)

    async def _kill_for_probe(self, which: str) -> None:
        w = self.worker
        await w.event("Killing", f"Container {self.name} failed {which} probe, will be "
                                 "restarted")
        w.send({"op": "signal", "name": self.name, "sig": int(signal.SIGTERM)})
        await asyncio.sleep(self._probe_kill_grace(which))
        w.send({"op": "signal", "name": self.name, "sig": int(signal.SIGKILL)})
