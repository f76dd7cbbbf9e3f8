"""The backup-and-restore drill in one cluster: back up, lose, restore, compare, repair.

Fault ``mesh-config-loss`` (the name a target's ``destructive.allowed`` must list
for the cluster): every mesh configuration object in the namespaces under test
is deleted. Each delete goes through ``meshproof.safety.Changes``, so its
manifest is kept in the cluster first and ``meshproof recover`` re-creates it
after a SIGKILL. The restore itself writes plainly, as ``kubectl apply`` would:
the restored objects are the mesh's own, not the run's.

Directory layout (one per cluster): ``original/`` (the whole mesh configuration
before the fault, the reference), ``backup/`` (the backup under test: the
runbook's kinds, or fewer for a negative control) and ``restored/`` (the mesh
after the restore); ``diff`` them to see what the comparison saw.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from meshproof.backup.compare import Comparison, compare_objects, key_of
from meshproof.backup.export import MeshExport, export_mesh, read_export, write_export
from meshproof.backup.kinds import MESH_KINDS, GroupKind
from meshproof.backup.restore import in_scope, object_paths, restore_objects
from meshproof.errors import MeshproofError
from meshproof.safety import Changes, require_allowed
from meshproof.target import Target

__all__ = ["FAULT", "ConfigLossDrill"]

FAULT = "mesh-config-loss"
"""The blast-radius name of the fault: the mesh configuration of the namespaces under
test is deleted from a cluster."""


@dataclass(slots=True)
class ConfigLossDrill:
    """One cluster's drill. Call ``back_up``, ``lose``, ``restore``, ``compare`` in turn,
    and ``repair`` however it ended (before ``changes`` is undone)."""

    target: Target
    changes: Changes
    directory: Path
    kinds: tuple[GroupKind, ...] = MESH_KINDS
    """What the backup under test holds (the runbook's Backup Strategy by default)."""
    original: MeshExport | None = None
    comparison: Comparison | None = None
    lost: list[str] = field(default_factory=list)
    """The objects the fault deleted, in words."""

    @property
    def cluster(self) -> str:
        return self.changes.cluster

    @property
    def namespaces(self) -> Collection[str]:
        """The blast radius inside the cluster: the target's namespaces under test."""
        return tuple(self.target.namespaces)

    @property
    def backup_dir(self) -> Path:
        return self.directory / "backup"

    def back_up(self) -> MeshExport:
        """Export the whole mesh configuration (``original/``) and write the backup under
        test (``backup/``); returns the backup."""
        api = self.changes.api
        self.original = export_mesh(api)
        write_export(self.original, self.directory / "original")
        backup = self.original.without(gk for gk in MESH_KINDS if gk not in self.kinds)
        write_export(backup, self.backup_dir)
        return backup

    def lose(self) -> list[str]:
        """The fault: delete every original object in the namespaces under test; refused
        (``DestructiveRefused``, nothing written) unless the target allows ``FAULT`` here."""
        require_allowed(self.target, self.cluster, FAULT)
        original = self._original()
        chosen = [o for o in original.objects if in_scope(o, self.namespaces)]
        for obj, path in zip(chosen, object_paths(self.changes.api, chosen), strict=True):
            self.changes.delete(path)
            self.lost.append(str(key_of(obj)))
        return list(self.lost)

    def restore(self) -> list[str]:
        """The runbook's restore from ``backup/``, inside the namespaces under test."""
        backup = read_export(self.backup_dir)
        return restore_objects(self.changes.api, backup.objects, namespaces=self.namespaces)

    def compare(self) -> Comparison:
        """The original against the cluster's mesh configuration now (``restored/``)."""
        now = export_mesh(self.changes.api)
        write_export(now, self.directory / "restored")
        self.comparison = compare_objects(self._original().objects, now.objects)
        return self.comparison

    def repair(self) -> list[str]:
        """Put back every original object in scope the restore did not bring back equal, and
        delete what the restore added (a narrower or edited backup); ``changes.undo`` then
        has nothing left to do."""
        if self.original is None:
            return []
        api = self.changes.api
        now = [o for o in export_mesh(api).objects if in_scope(o, self.namespaces)]
        comparison = compare_objects(
            [o for o in self.original.objects if in_scope(o, self.namespaces)], now)
        wrong = {d.key for d in comparison.differences if d.change != "unexpected"}
        added = {d.key for d in comparison.differences if d.change == "unexpected"}
        extra = [o for o in now if key_of(o) in added]
        for path in object_paths(api, extra):
            api.delete(path)
        lines = [f"deleted {key_of(o)} (not in the original)" for o in extra]
        stale = [o for o in self.original.objects if key_of(o) in wrong]
        return lines + restore_objects(api, stale, namespaces=self.namespaces)

    def _original(self) -> MeshExport:
        if self.original is None:
            raise MeshproofError(f"no backup of {self.cluster} was taken; back it up first")
        return self.original
