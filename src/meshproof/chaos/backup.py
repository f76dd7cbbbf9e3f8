"""Chaos Toolkit activities of the backup-and-restore drill (BACKUP-RESTORE).

Fault ``mesh-config-loss``: the mesh configuration of the target's namespaces under
test is deleted from a cluster (each delete recorded in the cluster first through
``meshproof.safety.Changes``) and restored from the runbook's backup. Activities, in
the order an experiment calls them: ``back_up_mesh_config``, ``lose_mesh_config``,
``restore_mesh_config``, ``compare_mesh_config``, ``requests_after_restore``,
``backup_restore_verdict``; rollback: ``repair_mesh_config`` (then
``meshproof.chaos.actions.restore``). The backup lands in ``directory`` (default:
``<tmp>/meshproof-backup-<run id>``), one subdirectory per cluster.
"""

# No `from __future__ import annotations`: chaoslib reads the annotations at run time
# to give `chaos discover` portable argument types.

import tempfile
import time
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, DiscoveredActivities, Secrets

from meshproof.backup import (
    FAULT,
    GUARANTEE,
    MESH_KINDS,
    Comparison,
    ConfigLossDrill,
    judge_backup_restore,
    parse_kinds,
)
from meshproof.chaos.discovery import typed_activities
from meshproof.chaos.state import Drill, drill_for
from meshproof.errors import MeshproofError
from meshproof.waiting import eventually

__all__ = [
    "back_up_mesh_config",
    "backup_restore_verdict",
    "compare_mesh_config",
    "load_exported_activities",
    "lose_mesh_config",
    "repair_mesh_config",
    "requests_after_restore",
    "restore_mesh_config",
]

PROBES = ("compare_mesh_config", "requests_after_restore", "backup_restore_verdict")
"""The activities that are probes (the others are actions)."""

_drill: Drill | None = None
_clusters: dict[str, ConfigLossDrill] = {}


def _backed_up(configuration: Configuration, cluster: str) -> tuple[Drill, ConfigLossDrill]:
    """The drill and its backup of ``cluster``; ActivityFailed when none was taken."""
    drill = drill_for(configuration)
    found = _clusters.get(drill.cluster(cluster)) if _drill is drill else None
    if found is None:
        raise ActivityFailed(f"no backup of {cluster} was taken in this drill; call "
                             "back_up_mesh_config first")
    return drill, found


def _failed(what: str, exc: MeshproofError) -> ActivityFailed:
    return ActivityFailed(f"{what}: {exc}")


def back_up_mesh_config(cluster: str, kinds: str = "", directory: str = "",
                        configuration: Configuration = None,
                        secrets: Secrets = None) -> dict[str, Any]:
    """The runbook's backup of ``cluster``: export its mesh configuration (gateways,
    virtual services, destination rules, service entries, peer authentications,
    authorization policies, certificates, issuers) into ``directory``/<cluster>/backup.
    ``kinds`` (comma-separated, e.g. ``gateway,virtualservice,destinationrule``) narrows
    the backup; the whole configuration is kept as the reference all the same."""
    global _drill
    drill = drill_for(configuration)
    name = drill.cluster(cluster)
    try:
        wanted = parse_kinds(kinds.split(",")) if kinds.strip() else MESH_KINDS
    except ValueError as exc:
        raise ActivityFailed(f"back_up_mesh_config: {exc}") from exc
    base = Path(directory) if directory else (
        Path(tempfile.gettempdir()) / f"meshproof-backup-{drill.run_id}")
    if _drill is not drill:
        _drill = drill
        _clusters.clear()
    backup = ConfigLossDrill(target=drill.target, changes=drill.changes_in(name),
                             directory=base / name, kinds=wanted)
    try:
        exported = backup.back_up()
    except MeshproofError as exc:
        raise _failed(f"backing up the mesh configuration of {name}", exc) from exc
    _clusters[name] = backup
    original = backup.original.objects if backup.original else []
    drill.note("backup", f"{len(exported.objects)} of {len(original)} mesh configuration "
               f"objects backed up to {backup.backup_dir}", cluster=name)
    return {"cluster": name, "directory": str(backup.backup_dir),
            "objects": len(exported.objects), "original_objects": len(original),
            "kinds": [str(k.group_kind) for k in exported.kinds],
            "not_served": [str(k) for k in exported.not_served]}


def lose_mesh_config(cluster: str, configuration: Configuration = None,
                     secrets: Secrets = None) -> dict[str, Any]:
    """Fault ``mesh-config-loss``: delete every mesh configuration object of the target's
    namespaces under test from ``cluster`` (each recorded first, so ``restore`` and
    ``meshproof recover`` can put it back)."""
    drill, backup = _backed_up(configuration, cluster)
    drill.allow(backup.cluster, FAULT)
    try:
        lost = backup.lose()
    except MeshproofError as exc:
        raise _failed(f"deleting the mesh configuration of {cluster}", exc) from exc
    drill.mark("fault-start", "fault-start",
               f"{len(lost)} mesh configuration objects deleted in "
               f"{', '.join(backup.namespaces)}", cluster=backup.cluster)
    return {"cluster": backup.cluster, "deleted": lost}


def restore_mesh_config(cluster: str, configuration: Configuration = None,
                        secrets: Secrets = None) -> dict[str, Any]:
    """The runbook's restore of ``cluster`` from its backup (create, or replace what
    exists), inside the namespaces under test; ends the fault window."""
    drill, backup = _backed_up(configuration, cluster)
    try:
        lines = backup.restore()
    except MeshproofError as exc:
        raise _failed(f"restoring the mesh configuration of {cluster}", exc) from exc
    drill.mark("fault-end", "fault-end",
               f"{len(lines)} objects restored from {backup.backup_dir}", cluster=backup.cluster)
    return {"cluster": backup.cluster, "restored": lines}


def compare_mesh_config(cluster: str, configuration: Configuration = None,
                        secrets: Secrets = None) -> dict[str, Any]:
    """Compare ``cluster``'s mesh configuration now with the one backed up before the
    fault, object by object, ignoring server-set fields and the run's marks."""
    drill, backup = _backed_up(configuration, cluster)
    try:
        comparison = backup.compare()
    except MeshproofError as exc:
        raise _failed(f"reading the mesh configuration of {cluster} back", exc) from exc
    drill.note("verification", f"restored mesh configuration: {comparison.summary()}",
               cluster=backup.cluster)
    return {"cluster": backup.cluster, "original": comparison.original,
            "equal": comparison.equal,
            "differences": [str(d) for d in comparison.differences]}


def requests_after_restore(from_cluster: str, service: str, namespace: str, port: int,
                           path: str = "/", count: int = 20,
                           configuration: Configuration = None,
                           secrets: Secrets = None) -> dict[str, Any]:
    """Batches of ``count`` requests from ``from_cluster``'s in-mesh probe to
    ``http://<service>.<namespace>:<port><path>`` until one is answered 2xx throughout
    (up to the recover timeout); reports the last batch and when traffic was back."""
    drill = drill_for(configuration)
    cluster = drill.cluster(from_cluster)
    timeouts = drill.target.resolved_timeouts
    url = f"http://{service}.{namespace}:{port}{path}"
    last: dict[str, int] = {}

    def batch() -> None:
        answer = drill.probes().request(cluster, "mesh", {
            "url": url, "count": count, "timeout": timeouts.api_request})
        results = answer.get("results") or []
        last["total"] = len(results)
        last["good"] = sum(1 for r in results if 200 <= int(r.get("status") or 0) < 300)
        assert results and last["good"] == last["total"], (
            f"{last['good']} of {last['total']} requests to {url} answered 2xx")

    start = drill.moments.get("fault-end", time.time())
    try:
        eventually(batch, timeout=timeouts.recover, interval=timeouts.poll_interval,
                   what=f"requests from {cluster} to {url} after the restore")
        back: float | None = time.time()
    except MeshproofError as exc:
        if not last:
            raise _failed(f"requests from {cluster} to {url}", exc) from exc
        back = None
    result = {"url": url, "from": cluster, "good": last["good"], "total": last["total"],
              "recover_s": None if back is None else round(back - start, 3)}
    if back is not None:
        drill.mark("recovered", "recovery", f"{url} answers {cluster} again "
                   f"{back - start:.1f} s after the restore", cluster=cluster, at=back)
    drill.measurements["traffic_after_restore"] = result
    return result


def backup_restore_verdict(configuration: Configuration = None,
                           secrets: Secrets = None) -> dict[str, Any]:
    """BACKUP-RESTORE's verdict: every backed-up object restored equal (the catalog's
    ``min_ratio``) and the requests after the restore answered; fails unless it held."""
    drill = drill_for(configuration)
    comparisons: dict[str, Comparison] = {
        name: c.comparison for name, c in _clusters.items()
        if _drill is drill and c.comparison is not None}
    traffic = drill.measurements.get("traffic_after_restore")
    judgement = judge_backup_restore(
        comparisons, None if traffic is None else (int(traffic["good"]), int(traffic["total"])),
        drill.thresholds(GUARANTEE))
    return drill.settle(GUARANTEE, judgement)


def repair_mesh_config(cluster: str, configuration: Configuration = None,
                       secrets: Secrets = None) -> dict[str, Any]:
    """Rollback: put back every original object of ``cluster``'s namespaces under test that
    the restore did not bring back equal, and delete what it added (nothing to do after
    a good restore). ``meshproof.chaos.actions.restore`` then drops the undo records."""
    drill = drill_for(configuration)
    backup = _clusters.get(drill.cluster(cluster)) if _drill is drill else None
    if backup is None:
        return {"cluster": cluster, "repaired": []}
    try:
        lines = backup.repair()
    except MeshproofError as exc:
        raise _failed(f"repairing the mesh configuration of {cluster}", exc) from exc
    if lines:
        drill.note("rollback", f"repaired after the restore: {'; '.join(lines)}",
                   cluster=backup.cluster)
    return {"cluster": backup.cluster, "repaired": lines}


def load_exported_activities() -> list[DiscoveredActivities]:
    """This module's activities for ``chaos discover``, each typed action or probe."""
    return typed_activities(__name__, PROBES)
