"""The runbook's backup and restore of the mesh configuration, and the drill that proves it.

- ``export_mesh`` / ``write_export`` / ``read_export``: the runbook's "Backup Strategy"
  as library code: every gateway, virtual service, destination rule, service entry,
  peer authentication, authorization policy, certificate, issuer and cluster issuer of
  one cluster, in the versions the cluster serves (discovered), to a directory that
  ``kubectl apply -f`` accepts; never a Secret.
- ``restore_objects``: the runbook's restore (create, or replace what exists).
- ``compare_objects``: the semantic comparison of two exports, object by object,
  ignoring server-set fields and the safety layer's marks.
- ``ConfigLossDrill``: fault ``mesh-config-loss`` (back up, delete through
  ``meshproof.safety.Changes``, restore, compare, repair); ``judge_backup_restore``
  turns its comparison and the traffic after it into BACKUP-RESTORE's verdict.

See docs/backup.md.
"""

from __future__ import annotations

from meshproof.backup.compare import (
    Comparison,
    FieldChange,
    ObjectDifference,
    ObjectKey,
    compare_objects,
    mesh_view,
)
from meshproof.backup.drill import FAULT, ConfigLossDrill
from meshproof.backup.export import MeshExport, export_mesh, read_export, write_export
from meshproof.backup.kinds import (
    MESH_KINDS,
    RUNBOOK_WEEKLY_KINDS,
    GroupKind,
    ServedKind,
    discover_kinds,
    parse_kinds,
)
from meshproof.backup.restore import restore_objects
from meshproof.backup.verdict import GUARANTEE, judge_backup_restore

__all__ = [
    "FAULT",
    "GUARANTEE",
    "MESH_KINDS",
    "RUNBOOK_WEEKLY_KINDS",
    "Comparison",
    "ConfigLossDrill",
    "FieldChange",
    "GroupKind",
    "MeshExport",
    "ObjectDifference",
    "ObjectKey",
    "ServedKind",
    "compare_objects",
    "discover_kinds",
    "export_mesh",
    "judge_backup_restore",
    "mesh_view",
    "parse_kinds",
    "read_export",
    "restore_objects",
    "write_export",
]
