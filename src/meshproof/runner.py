"""Running a profile against a target: the seam the CLI calls.

``run_profile`` and ``recover`` are the two entry points ``meshproof run`` and
``meshproof recover`` hand a validated target to. Until features, steps and
experiments implement guarantees, both say so and exit 2 (the run could not be
done) rather than report anything as held.
"""

from __future__ import annotations

from pathlib import Path

from meshproof.catalog import load_catalog
from meshproof.errors import MeshproofError
from meshproof.target import Target

__all__ = ["recover", "run_profile"]


def run_profile(target: Target, profile: str, report_dir: Path) -> int:
    """Prove every guarantee of ``profile`` on ``target``; write reports to ``report_dir``.

    Returns 0 when all held, 1 when one was violated; raises ``MeshproofError``
    when the run cannot be done.
    """
    declared = load_catalog().for_profile(profile)
    raise MeshproofError(
        f"profile {profile!r} has no runnable guarantees yet: {len(declared)} are declared in "
        "the catalog but no feature or experiment implements them, so nothing was measured "
        f"on target {target.name!r} and no report was written to {report_dir}"
    )


def recover(target: Target) -> int:
    """Find and undo leftovers of interrupted runs on ``target``; 0 when it is clean."""
    raise MeshproofError(
        f"recover: leftover discovery is not implemented yet, so nothing on target "
        f"{target.name!r} ({', '.join(target.cluster_names)}) was inspected or changed"
    )
