"""Finding and undoing what runs that died left in a cluster.

Leftovers of a run are: its undo records (undone newest first, then deleted),
objects labelled with its run id (the probe namespace and anything else it
created outside ``Changes``; deleted) and its run lock Lease once expired.
The run holding a live lock, and ``keep_run``, are left alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from meshproof.clients.kube import ClusterApi, NotFoundError
from meshproof.errors import MeshproofError
from meshproof.safety.lock import LEASE_PATH, read_holder, run_lock
from meshproof.safety.marks import RUN_ID_LABEL, describe_path
from meshproof.safety.records import UndoRecord, delete_record, list_records, undo_record
from meshproof.timeouts import Timeouts

__all__ = [
    "LABELLED_KINDS",
    "SweepResult",
    "claimed_run",
    "sweep",
    "sweep_cluster",
    "sweep_dead_runs",
]

LABELLED_KINDS = (
    "/api/v1/namespaces",
    "/apis/networking.istio.io/v1/virtualservices",
    "/apis/networking.istio.io/v1/destinationrules",
    "/apis/networking.istio.io/v1/serviceentries",
    "/apis/networking.istio.io/v1/gateways",
    "/apis/security.istio.io/v1/peerauthentications",
    "/apis/security.istio.io/v1/authorizationpolicies",
    "/apis/apps/v1/deployments",
    "/api/v1/services",
    "/api/v1/configmaps",
    "/api/v1/pods",
)
"""Where a sweep looks for objects labelled with a run id (cluster-wide lists); kinds a
cluster does not serve are skipped. Objects inside a namespace the sweep deletes go with it."""


@dataclass(slots=True)
class SweepResult:
    """What a sweep of one cluster did."""

    cluster: str
    undone: list[str] = field(default_factory=list)
    """One line per thing undone."""
    failed: list[str] = field(default_factory=list)
    """One line per thing that could not be undone (its record stays for the next sweep)."""
    left_alone: list[str] = field(default_factory=list)
    """Runs that are live (their lock is held), so their changes are not leftovers."""
    restored: list[UndoRecord] = field(default_factory=list)
    """The undo records carried out (to re-check the steady state of what they touched)."""

    @property
    def lines(self) -> list[str]:
        return ([f"{self.cluster}: {line}" for line in self.undone]
                + [f"{self.cluster}: could not undo: {line}" for line in self.failed]
                + [f"{self.cluster}: left alone: {line}" for line in self.left_alone])


def sweep_cluster(api: ClusterApi, cluster: str, *, keep_run: str | None = None
                  ) -> SweepResult:
    """Undo the leftovers of every dead run in one cluster (see the module docstring)."""
    result = SweepResult(cluster)
    lease, holder = read_holder(api)
    spared = {keep_run} if keep_run else set()
    if holder is not None and holder.run_id != keep_run and holder.live():
        spared.add(holder.run_id)
        result.left_alone.append(f"{holder.describe()} holds the run lock")
    _undo_records(api, spared, result)
    _delete_labelled(api, spared, result)
    stale = holder if lease is not None and holder and holder.run_id not in spared else None
    if stale is not None and api.delete(LEASE_PATH):
        result.undone.append(f"removed the expired run lock of {stale.describe()}")
    return result


def sweep(api: ClusterApi, cluster: str, *, keep_run: str | None = None) -> list[str]:
    """Find and undo leftovers of every run but ``keep_run`` (and a run holding a live lock)
    in one cluster; returns one line per thing undone, or that could not be."""
    return sweep_cluster(api, cluster, keep_run=keep_run).lines


def sweep_dead_runs(apis: Mapping[str, ClusterApi], run_id: str | None = None) -> list[str]:
    """Sweep every cluster of ``apis`` (sparing ``run_id`` and live lock holders); the lines
    of all."""
    lines: list[str] = []
    for cluster, api in apis.items():
        lines += sweep(api, cluster, keep_run=run_id)
    return lines


@contextmanager
def claimed_run(apis: Mapping[str, ClusterApi], run_id: str, timeouts: Timeouts
                ) -> Iterator[list[str]]:
    """The start of every run: take the run lock in every cluster (``RunLocked`` when another
    live run holds one), then sweep the leftovers of dead runs; yields the sweep's lines.
    The locks are released when the block ends."""
    with ExitStack() as locks:
        for api in apis.values():
            locks.enter_context(run_lock(api, run_id, timeouts))
        yield sweep_dead_runs(apis, run_id)


def _undo_records(api: ClusterApi, spared: set[str], result: SweepResult) -> None:
    records = [r for r in list_records(api) if r.run_id not in spared]
    # Newest first across runs too: a later run's change sits on top of an earlier one's.
    for record in sorted(records, key=lambda r: r.seq, reverse=True):
        try:
            result.undone.append(undo_record(api, record))
            delete_record(api, record)
            result.restored.append(record)
        except MeshproofError as exc:
            result.failed.append(f"{record.what} (run {record.run_id}): {exc}")


def _delete_labelled(api: ClusterApi, spared: set[str], result: SweepResult) -> None:
    gone_namespaces: set[str] = set()
    for collection in LABELLED_KINDS:
        try:
            items = api.get(collection, labelSelector=RUN_ID_LABEL).get("items") or []
        except NotFoundError:
            continue  # the cluster does not serve this kind
        for item in items:
            meta = item.get("metadata") or {}
            run = (meta.get("labels") or {}).get(RUN_ID_LABEL, "")
            namespace = meta.get("namespace") or ""
            if run in spared or namespace in gone_namespaces or meta.get("deletionTimestamp"):
                continue
            prefix, plural = collection.rsplit("/", 1)
            path = (f"{prefix}/namespaces/{namespace}/{plural}/{meta['name']}" if namespace
                    else f"{collection}/{meta['name']}")
            try:
                if api.delete(path):
                    result.undone.append(f"deleted {describe_path(path)} (created by run {run})")
                    result.restored.append(UndoRecord(run, 0, "create", path,
                                                      f"created {describe_path(path)}"))
            except MeshproofError as exc:
                result.failed.append(f"deleting {describe_path(path)} of run {run}: {exc}")
            if collection == "/api/v1/namespaces":
                gone_namespaces.add(meta["name"])
