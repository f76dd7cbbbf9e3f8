"""``Changes``: every write a run makes in one cluster, with its way back stored first."""

from __future__ import annotations

import copy
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import IO, Any, TypeVar

from meshproof.clients.kube import ClusterApi, NotFoundError
from meshproof.errors import MeshproofError, TargetUnreachable
from meshproof.safety.marks import (
    CHANGED_BY_ANNOTATION,
    MANAGED_BY,
    RUN_ID_LABEL,
    apply_merge_patch,
    describe_path,
    inverse_merge_patch,
    split_path,
    strip_server_fields,
)
from meshproof.safety.records import Action, UndoRecord, delete_record, undo_record, write_record
from meshproof.safety.signals import signals_deferred

__all__ = ["Changes", "UndoIncomplete"]

T = TypeVar("T")
_PAST = {"create": "created", "patch": "patched", "scale": "scaled", "delete": "deleted"}


class UndoIncomplete(MeshproofError):
    """Some changes could not be taken back; their undo records stay for ``meshproof recover``."""


class Changes:
    """Every change a run makes in one cluster, recorded IN the cluster before it is made
    (label/annotation on the object, or an undo record object carrying the run id), so that
    recover() can undo it after a SIGKILL without any local state.

    Use it as a context manager (``undo()`` then runs however the block ends, and
    SIGINT / SIGTERM / SIGHUP wait until it has finished). With ``dry_run`` nothing is
    written: each change is printed to ``out`` as ``dry-run <cluster>: would ...``
    and kept in ``planned`` (objects are still read, to say what would change).
    """

    def __init__(self, api: ClusterApi, cluster: str, run_id: str, *, dry_run: bool = False,
                 out: IO[str] | None = None) -> None:
        self.api = api
        self.cluster = cluster
        self.run_id = run_id
        self.dry_run = dry_run
        self.out = out
        self.planned: list[str] = []
        self._records: list[UndoRecord] = []
        self._seq = 0
        self._plurals: dict[tuple[str, str], tuple[str, bool]] = {}

    # -- the changes -------------------------------------------------------------------

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create ``obj`` labelled with the run id; its undo deletes it."""
        body = copy.deepcopy(obj)
        meta = body.setdefault("metadata", {})
        meta["labels"] = {**(meta.get("labels") or {}), RUN_ID_LABEL: self.run_id, **MANAGED_BY}
        path = self.object_path(body)
        what = f"created {describe_path(path)}"
        if self._dry(f"would create {describe_path(path)}"):
            return body
        record = self._record("create", path, what)
        return self._write(record, lambda: self.api.create(split_path(path)[0], body))

    def patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch the object at ``path``; its original values are kept first."""
        # A Secret's values stay out of records and output (they may be credentials).
        shown = "new values (not shown)" if "/secrets/" in path else str(patch)[:300]
        return self._patch("patch", path, patch, f"{describe_path(path)} with {shown}")

    def scale(self, namespace: str, deployment: str, replicas: int) -> int:
        """Set a Deployment's replicas; returns the previous count (kept first for the undo)."""
        path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}"
        current = self.api.get(path)
        previous = int((current.get("spec") or {}).get("replicas", 1))
        self._patch("scale", path, {"spec": {"replicas": replicas}},
                    f"deployment {namespace}/{deployment} {previous} → {replicas}",
                    current=current)
        return previous

    def delete(self, path: str) -> None:
        """Delete the object at ``path``; its manifest is kept first (undo re-creates it)."""
        try:
            current = self.api.get(path)
        except NotFoundError:
            return
        what = f"deleted {describe_path(path)}"
        if self._dry(f"would delete {describe_path(path)}"):
            return
        record = self._record("delete", path, what, manifest=strip_server_fields(current))
        self._write(record, lambda: self.api.delete(path))

    def undo(self) -> list[str]:
        """Take back this run's changes in reverse order; one line per change undone.

        Tries every change even when one fails, then raises ``UndoIncomplete`` naming
        the failures (their undo records remain, so ``meshproof recover`` can retry).
        SIGINT / SIGTERM arriving meanwhile take effect once it has finished.
        """
        lines: list[str] = []
        failures: list[str] = []
        with signals_deferred():
            while self._records:
                record = self._records.pop()
                try:
                    lines.append(f"{self.cluster}: {undo_record(self.api, record)}")
                    delete_record(self.api, record)
                except MeshproofError as exc:
                    failures.append(f"{record.what}: {exc}")
        if failures:
            raise UndoIncomplete(
                f"could not undo {len(failures)} change(s) on {self.cluster} "
                f"(run `meshproof recover`): {'; '.join(failures)}")
        return lines

    def __enter__(self) -> Changes:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        lines = self.undo()
        if self.out is not None:
            for line in lines:
                self.out.write(f"undo {line}\n")

    # -- recording -----------------------------------------------------------------------

    def object_path(self, obj: dict[str, Any]) -> str:
        """The API path of ``obj`` (its plural found through API discovery)."""
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        meta = obj.get("metadata") or {}
        if not api_version or not kind or not meta.get("name"):
            raise MeshproofError(
                f"cannot create an object without apiVersion, kind and metadata.name "
                f"on {self.cluster}: {api_version or '?'} {kind or '?'} {meta.get('name', '?')}")
        plural, namespaced = self._plural(api_version, kind)
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespaced:
            base += f"/namespaces/{meta.get('namespace') or 'default'}"
        return f"{base}/{plural}/{meta['name']}"

    def _plural(self, api_version: str, kind: str) -> tuple[str, bool]:
        key = (api_version, kind)
        if key not in self._plurals:
            root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            for res in self.api.get(root).get("resources") or []:
                if "/" not in res.get("name", "") and res.get("kind") == kind:
                    self._plurals[key] = (str(res["name"]), bool(res.get("namespaced")))
                    break
            else:
                raise MeshproofError(
                    f"cluster {self.cluster} serves no {kind} in {api_version} "
                    "(is its CRD installed?)")
        return self._plurals[key]

    def _patch(self, action: Action, path: str, patch: dict[str, Any], words: str, *,
               current: dict[str, Any] | None = None) -> dict[str, Any]:
        """A merge patch that also marks the object as changed by this run."""
        marked = apply_merge_patch(
            {"metadata": {"annotations": {CHANGED_BY_ANNOTATION: self.run_id}}}, patch)
        if current is None:
            current = self.api.get(path)
        if self._dry(f"would {action} {words}"):
            return dict(apply_merge_patch(current, patch))
        record = self._record(action, path, f"{_PAST[action]} {words}",
                              inverse=inverse_merge_patch(current, marked))
        return self._write(record, lambda: self.api.merge_patch(path, marked))

    def _dry(self, line: str) -> bool:
        if not self.dry_run:
            return False
        self.planned.append(line)
        (self.out or sys.stdout).write(f"dry-run {self.cluster}: {line}\n")
        return True

    def _write(self, record: UndoRecord, write: Callable[[], T]) -> T:
        """Make the change ``record`` undoes. When the API refused it (it did not happen),
        the record is dropped; when the server did not answer, it may have: the record stays."""
        try:
            return write()
        except TargetUnreachable:
            raise
        except MeshproofError:
            self._records.remove(record)
            delete_record(self.api, record)
            raise

    def _record(self, action: Action, path: str, what: str, *,
                inverse: dict[str, Any] | None = None,
                manifest: dict[str, Any] | None = None) -> UndoRecord:
        # Microseconds since the epoch: records of one run sort in the order their changes
        # were made, even when several processes of the run record changes.
        self._seq = max(self._seq + 1, time.time_ns() // 1000)
        record = UndoRecord(run_id=self.run_id, seq=self._seq, action=action, path=path,
                            what=what, inverse=inverse or {}, manifest=manifest or {})
        write_record(self.api, record)
        self._records.append(record)
        return record

