"""The runbook's backup: export one cluster's mesh configuration to a directory, read it back.

A directory holds one cluster's export: ``manifest.json`` (the format version, the
cluster, when, and per kind the version it was read in, its count and file) and one
``<plural>.<group>.yaml`` per kind, a ``kind: List`` that ``kubectl apply -f``
accepts as it is. Objects are kept without what the API server sets (``status``,
``uid``, ``resourceVersion``, timestamps, ``managedFields``). No Secret is ever
exported: the mesh kinds only name their Secrets (``credentialName``, ``secretName``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from meshproof.backup.kinds import MESH_KINDS, GroupKind, ServedKind, discover_kinds
from meshproof.clients.kube import ClusterApi
from meshproof.errors import ConfigError
from meshproof.safety.marks import strip_server_fields

__all__ = [
    "EXPORT_FORMAT",
    "MANIFEST",
    "MeshExport",
    "export_mesh",
    "group_kind_of",
    "read_export",
    "write_export",
]

EXPORT_FORMAT = 1
MANIFEST = "manifest.json"


def group_kind_of(obj: dict[str, Any]) -> GroupKind:
    """The ``GroupKind`` of a manifest (``apiVersion`` without its version, and ``kind``)."""
    api_version = str(obj.get("apiVersion", ""))
    group = api_version.rpartition("/")[0]
    return GroupKind(group, str(obj.get("kind", "")))


@dataclass(slots=True)
class MeshExport:
    """One cluster's mesh configuration at one moment."""

    cluster: str
    kinds: list[ServedKind]
    """The kinds exported, in the version the cluster served them."""
    objects: list[dict[str, Any]] = field(default_factory=list)
    """The objects, without server-set fields."""
    not_served: list[GroupKind] = field(default_factory=list)
    """Mesh kinds the cluster does not serve (their CRD is not installed)."""
    exported_at: str = ""

    def of_kind(self, group_kind: GroupKind) -> list[dict[str, Any]]:
        return [o for o in self.objects if group_kind_of(o) == group_kind]

    def without(self, kinds: Iterable[GroupKind]) -> MeshExport:
        """This export with ``kinds`` left out (what a narrower backup would hold)."""
        dropped = set(kinds)
        return MeshExport(
            cluster=self.cluster, exported_at=self.exported_at,
            kinds=[k for k in self.kinds if k.group_kind not in dropped],
            objects=[o for o in self.objects if group_kind_of(o) not in dropped],
            not_served=list(self.not_served))


def export_mesh(api: ClusterApi, kinds: Iterable[GroupKind] = MESH_KINDS) -> MeshExport:
    """Read every object of ``kinds`` in every namespace of ``api``'s cluster (the runbook's
    ``kubectl get ... --all-namespaces -o yaml``)."""
    served, missing = discover_kinds(api, kinds)
    objects: list[dict[str, Any]] = []
    for kind in served:
        listing = api.get(kind.collection)
        items = sorted(listing.get("items") or [], key=lambda o: (
            o.get("metadata", {}).get("namespace", ""), o.get("metadata", {}).get("name", "")))
        for item in items:
            # Items of a list may leave apiVersion and kind to the list.
            obj = {"apiVersion": kind.api_version, "kind": kind.group_kind.kind, **item}
            objects.append(strip_server_fields(obj))
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return MeshExport(cluster=api.cluster, kinds=served, objects=objects, not_served=missing,
                      exported_at=stamp)


def _file_name(kind: ServedKind) -> str:
    return f"{kind.plural}.{kind.group_kind.group or 'core'}.yaml"


def write_export(export: MeshExport, directory: Path) -> Path:
    """Write ``export`` into ``directory`` (created; files of an older export replaced)."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for kind in export.kinds:
        items = export.of_kind(kind.group_kind)
        name = _file_name(kind)
        document = {"apiVersion": "v1", "kind": "List", "items": items}
        (directory / name).write_text(yaml.safe_dump(document, sort_keys=False),
                                      encoding="utf-8")
        entries.append({"group": kind.group_kind.group, "kind": kind.group_kind.kind,
                        "version": kind.version, "plural": kind.plural,
                        "namespaced": kind.namespaced, "count": len(items), "file": name})
    manifest = {"format": EXPORT_FORMAT, "cluster": export.cluster,
                "exported_at": export.exported_at, "kinds": entries,
                "not_served": [{"group": g.group, "kind": g.kind} for g in export.not_served]}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return directory


def read_export(directory: Path) -> MeshExport:
    """The export written to ``directory``; ``ConfigError`` naming what is wrong with it."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{directory} holds no mesh export (no {MANIFEST}); export one "
                          "with the backup procedure first") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read as JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise ConfigError(f"{path}: not a mesh export of format {EXPORT_FORMAT}")
    kinds: list[ServedKind] = []
    objects: list[dict[str, Any]] = []
    try:
        for entry in manifest.get("kinds") or []:
            kind = ServedKind(GroupKind(str(entry["group"]), str(entry["kind"])),
                              str(entry["version"]), str(entry["plural"]),
                              bool(entry["namespaced"]))
            kinds.append(kind)
            objects.extend(_items(directory / str(entry["file"]), kind))
        not_served = [GroupKind(str(e["group"]), str(e["kind"]))
                      for e in manifest.get("not_served") or []]
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: a kind entry lacks {exc}") from exc
    return MeshExport(cluster=str(manifest.get("cluster", "")), kinds=kinds, objects=objects,
                      not_served=not_served, exported_at=str(manifest.get("exported_at", "")))


def _items(path: Path, kind: ServedKind) -> list[dict[str, Any]]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"export file {path} cannot be read: {exc}") from exc
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ConfigError(f"export file {path} is not a List of objects")
    for item in items:
        if group_kind_of(item) != kind.group_kind:
            raise ConfigError(f"export file {path} holds a {item.get('kind')!r} "
                              f"({item.get('apiVersion')!r}); it lists {kind.group_kind} only")
    return items
