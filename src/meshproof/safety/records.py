"""Undo records: the way back from one change, kept in the cluster before the change is made.

Each record is a Secret in ``RECORD_NAMESPACE`` (a Secret, because the manifest
of a deleted object may hold secret data), named ``meshproof-undo-<run>-<seq>``
and labelled with the run id. A run that is killed leaves its records behind;
``sweep`` reads them back and undoes the changes in reverse order.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from meshproof.clients.kube import ClusterApi, NotFoundError
from meshproof.errors import MeshproofError
from meshproof.safety.marks import MANAGED_BY, RUN_ID_LABEL, describe_path, split_path

__all__ = [
    "RECORD_NAMESPACE",
    "RECORD_TYPE",
    "UNDO_LABEL",
    "Action",
    "UndoRecord",
    "delete_record",
    "exists",
    "list_records",
    "undo_record",
    "write_record",
]

RECORD_NAMESPACE = "default"
"""Where undo records and the run lock live: a namespace every cluster has."""
RECORD_TYPE = "meshproof.io/undo-record"
UNDO_LABEL = "meshproof.io/undo-record"
_SECRETS = f"/api/v1/namespaces/{RECORD_NAMESPACE}/secrets"

Action = Literal["create", "patch", "scale", "delete"]


@dataclass(frozen=True, slots=True)
class UndoRecord:
    """How to take back one change: ``create`` → delete ``path``; ``patch`` / ``scale`` →
    merge-patch ``path`` with ``inverse``; ``delete`` → create ``manifest`` again."""

    run_id: str
    seq: int
    action: Action
    path: str
    what: str
    """The change in words, e.g. ``scaled deployment istio-system/istiod 1 → 0``."""
    inverse: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return record_name(self.run_id, self.seq)



def record_name(run_id: str, seq: int) -> str:
    """A valid object name (DNS subdomain) for any run id."""
    run = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-") or "run"
    return f"meshproof-undo-{run[:200]}-{seq}"


def write_record(api: ClusterApi, record: UndoRecord) -> None:
    """Store ``record`` in the cluster (before the change it undoes is made)."""
    payload = json.dumps(asdict(record), separators=(",", ":")).encode()
    api.create(_SECRETS, {
        "apiVersion": "v1", "kind": "Secret", "type": RECORD_TYPE,
        "metadata": {"name": record.name, "namespace": RECORD_NAMESPACE,
                     "labels": {RUN_ID_LABEL: record.run_id, UNDO_LABEL: "true",
                                **MANAGED_BY}},
        "data": {"record": base64.b64encode(payload).decode()},
    })


def delete_record(api: ClusterApi, record: UndoRecord) -> None:
    api.delete(f"{_SECRETS}/{record.name}")


def list_records(api: ClusterApi) -> list[UndoRecord]:
    """Every undo record in the cluster, by run, oldest change first."""
    listing = api.get(_SECRETS, labelSelector=UNDO_LABEL)
    records = []
    for item in listing.get("items") or []:
        name = item.get("metadata", {}).get("name", "?")
        try:
            data = json.loads(base64.b64decode((item.get("data") or {})["record"]))
            records.append(UndoRecord(**data))
        except (KeyError, ValueError, TypeError) as exc:
            raise MeshproofError(
                f"undo record {RECORD_NAMESPACE}/{name} on {api.cluster} cannot be read "
                f"({exc.__class__.__name__}); inspect it with kubectl and delete it by hand"
            ) from exc
    return sorted(records, key=lambda r: (r.run_id, r.seq))


def undo_record(api: ClusterApi, record: UndoRecord) -> str:
    """Take back the change of ``record`` (idempotent: a change never made, or already taken
    back, is fine); returns what was done in one line."""
    obj = describe_path(record.path)
    if record.action == "create":
        try:
            labels = (api.get(record.path).get("metadata") or {}).get("labels") or {}
        except NotFoundError:
            return f"{obj} of run {record.run_id} was already gone"
        if labels.get(RUN_ID_LABEL) != record.run_id:
            # The run was stopped before its create; this object is someone else's.
            return f"{obj} was not created by run {record.run_id}; left alone"
        api.delete(record.path)
        return f"deleted {obj} (created by run {record.run_id})"
    if record.action in ("patch", "scale"):
        try:
            api.merge_patch(record.path, record.inverse)
        except NotFoundError:
            return f"{obj} is gone; nothing to restore of: {record.what}"
        return f"restored {obj} (undid: {record.what})"
    collection, _ = split_path(record.path)
    if exists(api, record.path):
        return f"{obj} is present again; nothing to restore of: {record.what}"
    api.create(collection, record.manifest)
    return f"re-created {obj} (undid: {record.what})"


def exists(api: ClusterApi, path: str) -> bool:
    """Whether the object at ``path`` exists."""
    try:
        api.get(path)
    except NotFoundError:
        return False
    return True
