"""The blast radius: which faults a run may apply in which cluster (``destructive.allowed``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from meshproof.errors import PermissionDenied
from meshproof.target import Target

__all__ = ["DestructiveRefused", "require_allowed", "require_all_allowed"]


class DestructiveRefused(PermissionDenied):
    """A destructive fault the target does not allow, or a run that may not write now.

    Raised before any write; the CLI prints the message on one line and exits 2.
    """


def require_allowed(target: Target, cluster: str, fault: str) -> None:
    """Raise ``DestructiveRefused`` unless ``destructive.allowed[cluster]`` lists ``fault``.

    Call it before ANY write of a destructive step or experiment (and before
    ``run_lock``, which writes a Lease): a refused fault leaves the cluster untouched.
    """
    if target.allows(cluster, fault):
        return
    where = f"destructive.allowed.{cluster}" + (f" in {target.source}" if target.source else "")
    if cluster not in target.cluster_names:
        raise DestructiveRefused(
            f"destructive fault {fault!r} refused: target {target.name} has no cluster "
            f"{cluster!r} (clusters: {', '.join(target.cluster_names)}); nothing was changed")
    allowed = target.destructive.allowed.get(cluster, [])
    listed = ", ".join(allowed) if allowed else "none"
    raise DestructiveRefused(
        f"destructive fault {fault!r} refused on cluster {cluster} of target {target.name}: "
        f"its blast radius allows {listed} there; add {fault!r} to {where} to allow it; "
        "nothing was changed")


def require_all_allowed(target: Target, faults: Mapping[str, Iterable[str]]) -> None:
    """``require_allowed`` for every (cluster, fault) of ``faults`` before anything is done,
    so a plan with one refused fault changes nothing anywhere."""
    for cluster, names in faults.items():
        for fault in names:
            require_allowed(target, cluster, fault)
