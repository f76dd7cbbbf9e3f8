"""``meshproof recover``: sweep every cluster of a target, then re-check what was touched.

Output (stable prefixes): ``undo <cluster>: ...`` per thing undone,
``fail <cluster>: ...`` per thing that could not be, ``check <cluster>: ...``
per steady-state check, then one ``recover: ...`` summary line.
Exit code: 0 when everything was undone and re-checked, 2 otherwise.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Callable
from contextlib import ExitStack
from typing import IO, Any

from meshproof.clients.kube import ClusterApi, NotFoundError
from meshproof.connections import open_connections, preflight
from meshproof.errors import MeshproofError, TargetUnreachable
from meshproof.safety.lock import RunLocked, run_lock
from meshproof.safety.marks import CHANGED_BY_ANNOTATION, describe_path
from meshproof.safety.records import UndoRecord
from meshproof.safety.sweep import SweepResult, sweep_cluster
from meshproof.target import Target
from meshproof.timeouts import Timeouts
from meshproof.waiting import eventually

__all__ = ["recover_target", "steady_state_checks"]

EXIT_CLEAN = 0
EXIT_NOT_UNDONE = 2


def recover_target(target: Target, *, out: IO[str] | None = None) -> int:
    """Undo the leftovers of interrupted runs on every cluster of ``target``, then check
    the objects they touched are back in their steady state; the exit code."""
    stream = out or sys.stdout
    timeouts = target.resolved_timeouts
    connections = open_connections(target, timeouts=timeouts)
    try:
        preflight(connections)
    except TargetUnreachable as exc:
        raise TargetUnreachable(
            f"recover: nothing on target {target.name} was inspected or changed: {exc}"
        ) from exc
    apis = connections.apis
    run_id = f"recover-{secrets.token_hex(4)}"
    undone = failed = checked = 0
    with ExitStack() as locks:
        results: list[SweepResult] = []
        for cluster, api in apis.items():
            try:
                how = locks.enter_context(run_lock(api, run_id, timeouts))
            except RunLocked as exc:
                stream.write(f"fail {cluster}: {exc}\n")
                failed += 1
                continue
            result = sweep_cluster(api, cluster, keep_run=run_id)
            if how.startswith("took over"):
                result.undone.insert(0, how)
            for line in result.undone:
                stream.write(f"undo {cluster}: {line}\n")
            for line in result.failed:
                stream.write(f"fail {cluster}: could not undo: {line}\n")
            undone, failed = undone + len(result.undone), failed + len(result.failed)
            results.append(result)
        for result in results:
            for line, ok in steady_state_checks(apis[result.cluster], result.restored, timeouts):
                stream.write(f"{'check' if ok else 'fail'} {result.cluster}: {line}\n")
                checked, failed = checked + ok, failed + (not ok)
    where = f"target {target.name} ({', '.join(apis)})"
    if failed:
        stream.write(f"recover: {failed} problem(s) on {where}, {undone} leftover(s) undone; "
                     "see the fail lines, then run `meshproof recover` again\n")
        return EXIT_NOT_UNDONE
    if not undone:
        stream.write(f"recover: nothing to undo on {where}: no leftovers of interrupted runs\n")
    else:
        stream.write(f"recover: {undone} leftover(s) undone on {where}; "
                     f"{checked} steady-state check(s) passed\n")
    return EXIT_CLEAN


def steady_state_checks(api: ClusterApi, restored: list[UndoRecord], timeouts: Timeouts
                        ) -> list[tuple[str, bool]]:
    """Wait until each object a sweep touched is as it was before its run: Deployments rolled
    out and Ready, re-created objects present, patched ones unmarked, created ones gone.
    One (line, passed) per object."""
    by_path: dict[str, UndoRecord] = {}
    for record in restored:  # newest first: the oldest change to an object decides its check
        by_path[record.path] = record
    lines = []
    for path, record in sorted(by_path.items()):
        words = describe_path(path)
        check, said = _check_for(api, record)
        try:
            detail = eventually(check, timeout=timeouts.rollout, interval=timeouts.poll_interval,
                                what=f"{words} {said}")
            lines.append((f"{words} {said}{detail}", True))
        except MeshproofError as exc:
            lines.append((str(exc), False))
    return lines


def _check_for(api: ClusterApi, record: UndoRecord) -> tuple[Callable[[], str], str]:
    path = record.path

    def gone() -> str:
        try:
            obj = api.get(path)
        except NotFoundError:
            return ""
        raise AssertionError("still present" + (" (terminating)" if obj.get("metadata", {})
                                                 .get("deletionTimestamp") else ""))

    def back() -> str:
        obj = _get(api, path)
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        assert CHANGED_BY_ANNOTATION not in annotations, (
            f"still marked as changed by run {annotations.get(CHANGED_BY_ANNOTATION)}")
        return _rolled_out(obj) if "/deployments/" in path else ""

    if record.action == "create":
        return gone, "is gone"
    return back, "is back" + (" and rolled out" if "/deployments/" in path else "")


def _get(api: ClusterApi, path: str) -> dict[str, Any]:
    try:
        return api.get(path)
    except NotFoundError as exc:
        raise AssertionError("not found") from exc


def _rolled_out(deployment: dict[str, Any]) -> str:
    """`` (N/N ready)`` once every replica is updated and available; AssertionError before."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    meta = deployment.get("metadata") or {}
    want = int(spec.get("replicas", 1))
    observed = int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    assert observed and updated >= want and available >= want, (
        f"{available}/{want} available, {updated} updated"
        + ("" if observed else ", new generation not yet observed"))
    return f" ({available}/{want} ready)"
