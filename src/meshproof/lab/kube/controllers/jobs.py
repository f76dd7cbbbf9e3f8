"""Jobs run pods to completion: ``parallelism`` at a time until ``completions`` succeed.

Reference: kubernetes/kubernetes ``pkg/controller/job/job_controller.go`` (pod labels
``batch.kubernetes.io/job-name`` / ``controller-uid`` and their legacy twins,
``backoffLimit`` counting failed pods and, for OnFailure, container restarts,
``activeDeadlineSeconds``, Indexed mode with ``batch.kubernetes.io/job-completion-index``,
status ``active`` / ``ready`` / ``succeeded`` / ``failed`` / ``startTime`` /
``completionTime`` and the ``SuccessCriteriaMet`` + ``Complete`` or
``FailureTarget`` + ``Failed`` conditions).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from meshproof.lab.kube.controllers.base import (
    Controller,
    Key,
    controller_owner_uid,
    is_pod_ready,
    now_rfc3339,
)
from meshproof.lab.kube.controllers.replicasets import pod_from_template
from meshproof.lab.kube.interfaces import NotFound, ResourceKind

__all__ = ["JobController"]

Obj = dict[str, Any]
INDEX = "batch.kubernetes.io/job-completion-index"


def _restarts(pod: Obj) -> int:
    return sum(c.get("restartCount", 0) for c in pod.get("status", {}).get("containerStatuses")
               or [])


def _condition(type_: str, reason: str, message: str) -> Obj:
    now = now_rfc3339()
    return {"type": type_, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now}


class JobController(Controller):
    name = "job"
    component = "job-controller"

    def __init__(self, store: Any, *, cluster: str) -> None:
        super().__init__(store, cluster=cluster)
        self.job_res = self.res("batch/v1", "Job")
        self.pods = self.res("v1", "Pod")
        self.watch_related(self.pods, self._pod_owner)

    @property
    def primary(self) -> ResourceKind:
        return self.job_res

    def _pod_owner(self, pod: Obj) -> list[Key]:
        for ref in pod["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "Job":
                return [(pod["metadata"].get("namespace", ""), ref["name"])]
        return []

    async def reconcile(self, key: Key) -> None:
        ns, name = key
        try:
            job = await self.store.get(self.job_res, name, namespace=ns)
        except NotFound:
            return
        status = dict(job.get("status") or {})
        conditions = list(status.get("conditions") or [])
        if job["metadata"].get("deletionTimestamp") or any(
                c["type"] in ("Complete", "Failed") and c["status"] == "True"
                for c in conditions):
            return
        spec = job.get("spec", {})
        uid = job["metadata"]["uid"]
        items, _ = await self.store.list(self.pods, namespace=ns)
        pods = [p for p in items if controller_owner_uid(p) == uid]
        active = [p for p in pods if not p["metadata"].get("deletionTimestamp")
                  and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")]
        succeeded = [p for p in pods if p.get("status", {}).get("phase") == "Succeeded"]
        failed = [p for p in pods if p.get("status", {}).get("phase") == "Failed"]
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1))
        on_failure = (spec.get("template", {}).get("spec", {}).get("restartPolicy")
                      == "OnFailure")
        failures = len(failed) + (sum(_restarts(p) for p in pods) if on_failure else 0)
        status.setdefault("startTime", now_rfc3339())
        done_indexes = sorted({int(p["metadata"].get("annotations", {}).get(INDEX, -1))
                               for p in succeeded} - {-1})
        n_succeeded = len(done_indexes) if indexed else len(succeeded)
        finished: tuple[str, str, str] | None = None
        deadline = spec.get("activeDeadlineSeconds")
        started = datetime.strptime(status["startTime"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
        if (completions is not None and n_succeeded >= int(completions)) or (
                completions is None and succeeded and not active):
            finished = ("Complete", "CompletionsReached", "Reached expected number of succeeded "
                        "pods")
        elif failures > int(spec.get("backoffLimit", 6)):
            finished = ("Failed", "BackoffLimitExceeded", "Job has reached the specified "
                        "backoff limit")
        elif deadline is not None and time.time() - started > int(deadline):
            finished = ("Failed", "DeadlineExceeded", "Job was active longer than specified "
                        "deadline")
        elif not spec.get("suspend"):
            await self._start_pods(job, active, done_indexes, n_succeeded, parallelism,
                                   completions, indexed)
            if deadline is not None:
                self.enqueue_after(key, 1.0)
        if finished is not None:
            for pod in active:
                try:
                    await self.store.delete(self.pods, pod["metadata"]["name"], namespace=ns)
                except NotFound:
                    pass
            active = []
            kind, reason, message = finished
            first = "SuccessCriteriaMet" if kind == "Complete" else "FailureTarget"
            conditions = [c for c in conditions if c["type"] not in (first, kind)]
            conditions += [_condition(first, reason, message), _condition(kind, reason, message)]
            if kind == "Complete":
                status["completionTime"] = now_rfc3339()
                await self.event(job, reason="Completed", message="Job completed")
            else:
                await self.event(job, reason=reason, message=message, type_="Warning")
        status.update({"active": len(active), "succeeded": len(succeeded),
                       "failed": len(failed),
                       "ready": sum(1 for p in active if is_pod_ready(p)),
                       "terminating": sum(1 for p in pods
                                          if p["metadata"].get("deletionTimestamp")),
                       "uncountedTerminatedPods": {}})
        for field_name in ("active", "succeeded", "failed", "terminating"):
            if not status[field_name]:
                del status[field_name]  # omitempty
        if indexed and done_indexes:
            status["completedIndexes"] = ",".join(str(i) for i in done_indexes)
        if conditions:
            status["conditions"] = conditions
        if job.get("status") != status:
            def put(obj: Obj) -> None:
                obj["status"] = status

            try:
                await self.store.mutate(self.job_res, name, put, namespace=ns,
                                        subresource="status")
            except NotFound:
                pass

    async def _start_pods(self, job: Obj, active: list[Obj], done_indexes: list[int],
                          n_succeeded: int, parallelism: int, completions: Any,
                          indexed: bool) -> None:
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        remaining = parallelism if completions is None else int(completions) - n_succeeded
        want = max(0, min(parallelism, remaining) - len(active))
        busy = {int(p["metadata"].get("annotations", {}).get(INDEX, -1)) for p in active}
        free = [i for i in range(int(completions or 0))
                if i not in busy and i not in done_indexes] if indexed else []
        labels = {"batch.kubernetes.io/job-name": name, "job-name": name,
                  "batch.kubernetes.io/controller-uid": job["metadata"]["uid"],
                  "controller-uid": job["metadata"]["uid"]}
        for n in range(want):
            if indexed and n >= len(free):
                break
            pod = pod_from_template(job["spec"].get("template") or {}, job,
                                    generate_name=f"{name}-", extra_labels=labels)
            if indexed:
                index = str(free[n])
                pod["metadata"]["generateName"] = f"{name}-{index}-"
                pod["metadata"].setdefault("annotations", {})[INDEX] = index
                pod["metadata"]["labels"][INDEX] = index
                pod["spec"]["hostname"] = f"{name}-{index}"
                for c in pod["spec"].get("containers") or []:
                    c.setdefault("env", []).append({"name": "JOB_COMPLETION_INDEX", "valueFrom": {
                        "fieldRef": {"fieldPath": f"metadata.annotations['{INDEX}']"}}})
            created = await self.store.create(self.pods, pod, namespace=ns)
            await self.event(job, reason="SuccessfulCreate",
                             message=f"Created pod: {created['metadata']['name']}")
