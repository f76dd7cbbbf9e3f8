"""What dead runs left behind, found without changing anything (the start of every run).

A run that is not destructive may only read: it cannot sweep, but it can say that a
drill killed earlier left a change in place (an undo record whose run holds no live
run lock), since such a change — istiod at zero replicas, a delay fault — decides
verdicts. ``meshproof recover`` undoes them.
"""

from __future__ import annotations

from collections.abc import Mapping

from meshproof.clients.kube import ClusterApi
from meshproof.errors import MeshproofError, TargetUnreachable
from meshproof.safety.lock import read_holder
from meshproof.safety.records import list_records

__all__ = ["dead_run_changes"]


def dead_run_changes(apis: Mapping[str, ClusterApi]) -> list[str]:
    """One line per change of a dead run still in place, per cluster; a cluster whose undo
    records could not be read (no right to) is one line saying so. An unreachable cluster
    gets none: the run itself says it cannot reach it."""
    lines: list[str] = []
    for cluster, api in apis.items():
        try:
            _, holder = read_holder(api)
            live = holder.run_id if holder is not None and holder.live() else None
            records = [r for r in list_records(api) if r.run_id != live]
        except TargetUnreachable:
            continue
        except MeshproofError as exc:
            lines.append(f"{cluster}: not checked for leftovers of dead runs: {exc}")
            continue
        lines += [f"{cluster}: {r.what}, made by run {r.run_id}, was never undone"
                  for r in records]
    return lines
