"""The run lock: one ``coordination.k8s.io/v1`` Lease per cluster, held while a run writes.

The Lease (``default/meshproof-run-lock``) names its holder's run id, host and
process. A holder is live while it renews the Lease (every third of
``Timeouts.run_lease``); it is dead once the Lease has not been renewed for
``leaseDurationSeconds``, or at once when it ran on this host and its process
is gone. A second live run is refused with ``RunLocked``; a dead holder's Lease
is taken over (its leftovers are then swept).
Lease fields: https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/lease-v1/
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from meshproof.clients.kube import ClusterApi, NotFoundError
from meshproof.errors import MeshproofError
from meshproof.safety.marks import MANAGED_BY, RUN_ID_LABEL
from meshproof.safety.records import RECORD_NAMESPACE
from meshproof.timeouts import Timeouts

__all__ = ["LEASE_NAME", "LEASE_PATH", "Holder", "RunLocked", "read_holder", "run_lock"]

LEASE_NAME = "meshproof-run-lock"
LEASE_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{RECORD_NAMESPACE}/leases/{LEASE_NAME}"
_HOST_ANNOTATION = "meshproof.io/holder-host"
_PID_ANNOTATION = "meshproof.io/holder-pid"


class RunLocked(MeshproofError):
    """Another live run holds a cluster's lock (one line: who, since when, what to do)."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a cluster's run lock, as its Lease says."""

    run_id: str
    identity: str
    host: str
    pid: int
    renewed: dt.datetime
    duration: float

    def live(self, now: dt.datetime | None = None) -> bool:
        """Still renewing (and, on this host, its process still exists)."""
        if self.host == socket.gethostname() and self.pid > 0 and not _process_exists(self.pid):
            return False
        now = now or dt.datetime.now(dt.UTC)
        return (now - self.renewed).total_seconds() < self.duration

    def describe(self, now: dt.datetime | None = None) -> str:
        age = ((now or dt.datetime.now(dt.UTC)) - self.renewed).total_seconds()
        return f"run {self.run_id} ({self.identity}, renewed {age:.0f}s ago)"


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited; only its parent has not reaped it yet
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _micro_time(when: dt.datetime) -> str:
    """A ``MicroTime``: RFC 3339 with microseconds, in UTC."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def holder_of(lease: dict[str, Any]) -> Holder | None:
    """The holder a Lease names; None when it names none."""
    spec = lease.get("spec") or {}
    meta = lease.get("metadata") or {}
    identity = str(spec.get("holderIdentity") or "")
    if not identity:
        return None
    annotations = meta.get("annotations") or {}
    try:
        pid = int(annotations.get(_PID_ANNOTATION, "0"))
    except ValueError:
        pid = 0
    when = spec.get("renewTime") or spec.get("acquireTime") or meta.get("creationTimestamp")
    renewed = _parse_time(str(when)) if when else dt.datetime.fromtimestamp(0, dt.UTC)
    return Holder(run_id=str((meta.get("labels") or {}).get(RUN_ID_LABEL, "")),
                  identity=identity, host=str(annotations.get(_HOST_ANNOTATION, "")), pid=pid,
                  renewed=renewed, duration=float(spec.get("leaseDurationSeconds") or 0))


def read_holder(api: ClusterApi) -> tuple[dict[str, Any] | None, Holder | None]:
    """The cluster's lock Lease (None if there is none) and its holder."""
    try:
        lease = api.get(LEASE_PATH)
    except NotFoundError:
        return None, None
    return lease, holder_of(lease)


def _claim(run_id: str, timeouts: Timeouts, now: dt.datetime) -> dict[str, Any]:
    host, pid = socket.gethostname(), os.getpid()
    return {
        "metadata": {"labels": {RUN_ID_LABEL: run_id, **MANAGED_BY},
                     "annotations": {_HOST_ANNOTATION: host, _PID_ANNOTATION: str(pid)}},
        "spec": {"holderIdentity": f"meshproof run {run_id} on {host} pid {pid}",
                 "leaseDurationSeconds": max(1, round(timeouts.run_lease)),
                 "acquireTime": _micro_time(now), "renewTime": _micro_time(now)},
    }


def acquire(api: ClusterApi, run_id: str, timeouts: Timeouts) -> str:
    """Take the cluster's lock for ``run_id``; returns how (``took the run lock`` or ``took
    over the stale run lock of <holder>``).

    Raises ``RunLocked`` when another live run holds it.
    """
    now = dt.datetime.now(dt.UTC)
    lease, holder = read_holder(api)
    claim = _claim(run_id, timeouts, now)
    if lease is None:
        try:
            api.create(LEASE_PATH.rsplit("/", 1)[0], {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                **{**claim, "metadata": {"name": LEASE_NAME, **claim["metadata"]}}})
        except MeshproofError as exc:
            if "409" not in str(exc):
                raise
        how = "took the run lock"
    elif holder is not None and holder.run_id != run_id and holder.live(now):
        raise RunLocked(
            f"cluster {api.cluster} is locked by {holder.describe(now)} "
            f"(Lease {RECORD_NAMESPACE}/{LEASE_NAME}); wait for that run to end, or if it "
            f"died, run `meshproof recover` once the lease has expired "
            f"({holder.duration:.0f}s after its last renewal)")
    else:
        transitions = int((lease.get("spec") or {}).get("leaseTransitions") or 0)
        claim["metadata"]["resourceVersion"] = lease["metadata"].get("resourceVersion")
        claim["spec"]["leaseTransitions"] = transitions + 1
        try:
            api.merge_patch(LEASE_PATH, claim)
        except MeshproofError as exc:
            if "409" not in str(exc):
                raise
        how = (f"took over the stale run lock of {holder.describe(now)}"
               if holder is not None and holder.run_id != run_id else "took the run lock")
    _, now_holder = read_holder(api)
    if now_holder is None or now_holder.identity != claim["spec"]["holderIdentity"]:
        who = now_holder.describe() if now_holder else "nobody"
        raise RunLocked(f"cluster {api.cluster}: another run took the lock first ({who}); "
                        "run again once it has ended")
    return how


def renew(api: ClusterApi, run_id: str) -> None:
    """Move the lock's renewTime to now (the holder is still alive)."""
    api.merge_patch(LEASE_PATH, {"spec": {"renewTime": _micro_time(dt.datetime.now(dt.UTC))},
                                 "metadata": {"labels": {RUN_ID_LABEL: run_id}}})


def release(api: ClusterApi, run_id: str) -> bool:
    """Delete the lock if ``run_id`` still holds it; whether it did."""
    _, holder = read_holder(api)
    if holder is None or holder.run_id != run_id:
        return False
    return api.delete(LEASE_PATH)


@contextmanager
def run_lock(api: ClusterApi, run_id: str, timeouts: Timeouts) -> Iterator[str]:
    """Hold the cluster's run Lease for the block, renewing it in the background.

    A second live run is refused with ``RunLocked`` (one line naming the holder);
    a dead run's Lease is taken over. Yields a line saying which (``took the run
    lock ...`` / ``took over the stale run lock of ...``). The Lease is released
    when the block ends, however it ends. Nested use by the same run (the runner
    and a drill of that run, say) yields ``held by this run already`` and leaves
    renewing and releasing to the outer holder.
    """
    _, holder = read_holder(api)
    if holder is not None and holder.run_id == run_id and holder.live():
        yield "held by this run already"
        return
    how = acquire(api, run_id, timeouts)
    stop = threading.Event()

    def keep_renewing() -> None:
        while not stop.wait(timeouts.run_lease / 3):
            try:
                renew(api, run_id)
            except MeshproofError:
                continue  # a missed renewal is retried; the lease outlives two of them

    renewer = threading.Thread(target=keep_renewing, name=f"run-lock-{api.cluster}",
                               daemon=True)
    renewer.start()
    try:
        yield how
    finally:
        stop.set()
        renewer.join(timeout=timeouts.api_request)
        release(api, run_id)
