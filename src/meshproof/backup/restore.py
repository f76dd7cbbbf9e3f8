"""The runbook's restore (``kubectl apply -f backup/mesh-policies.yaml``): put an export back.

Each object of the export is created when the cluster lacks it and replaced
(``PUT`` over the live ``resourceVersion``) when it has one, so the cluster ends
with exactly the exported spec, labels and annotations. A scope (namespaces)
limits the writes to the drill's blast radius; cluster-scoped objects are then
left alone.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterable
from typing import Any

from meshproof.backup.compare import key_of
from meshproof.backup.export import group_kind_of
from meshproof.backup.kinds import GroupKind, ServedKind, discover_kinds
from meshproof.clients.kube import ClusterApi, NotFoundError
from meshproof.errors import MeshproofError

__all__ = ["in_scope", "object_paths", "restore_objects"]


def in_scope(obj: dict[str, Any], namespaces: Collection[str] | None) -> bool:
    """Whether ``obj`` lies in ``namespaces`` (None: everything is in scope)."""
    if namespaces is None:
        return True
    return str((obj.get("metadata") or {}).get("namespace") or "") in namespaces


def _served(api: ClusterApi, objects: list[dict[str, Any]]) -> dict[GroupKind, ServedKind]:
    wanted = sorted({group_kind_of(o) for o in objects})
    served, missing = discover_kinds(api, wanted)
    if missing:
        raise MeshproofError(
            f"cluster {api.cluster} serves no {', '.join(str(m) for m in missing)}; "
            "install their CRDs before restoring the mesh configuration")
    return {kind.group_kind: kind for kind in served}


def _path(kind: ServedKind, obj: dict[str, Any]) -> str:
    """The object's path in the version its manifest is written in (the server converts)."""
    meta = obj.get("metadata") or {}
    version = str(obj.get("apiVersion", "")).rpartition("/")[2] or kind.version
    own = ServedKind(kind.group_kind, version, kind.plural, kind.namespaced)
    return own.object_path(str(meta.get("namespace") or "default"), str(meta["name"]))


def object_paths(api: ClusterApi, objects: Iterable[dict[str, Any]], *,
                 namespaces: Collection[str] | None = None) -> list[str]:
    """The API paths of the ``objects`` in scope, in ``api``'s cluster."""
    chosen = [o for o in objects if in_scope(o, namespaces)]
    if not chosen:
        return []
    served = _served(api, chosen)
    return [_path(served[group_kind_of(o)], o) for o in chosen]


def restore_objects(api: ClusterApi, objects: Iterable[dict[str, Any]], *,
                    namespaces: Collection[str] | None = None) -> list[str]:
    """Create or replace every object in scope; one line per object (``created ...`` or
    ``replaced ...``). Stops at the first object the cluster refuses, naming it."""
    chosen = [o for o in objects if in_scope(o, namespaces)]
    if not chosen:
        return []
    served = _served(api, chosen)
    lines: list[str] = []
    for obj in chosen:
        path = _path(served[group_kind_of(obj)], obj)
        body = copy.deepcopy(obj)
        try:
            try:
                live = api.get(path)
            except NotFoundError:
                api.create(path.rpartition("/")[0], body)
                lines.append(f"created {key_of(obj)}")
                continue
            body.setdefault("metadata", {})["resourceVersion"] = (
                (live.get("metadata") or {}).get("resourceVersion"))
            api.request("PUT", path, body=body)
            lines.append(f"replaced {key_of(obj)}")
        except MeshproofError as exc:
            raise MeshproofError(f"restoring {key_of(obj)} on {api.cluster}: {exc}") from exc
    return lines
