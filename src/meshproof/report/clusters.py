"""A guarantee's verdict per cluster, for the summary table and JUnit's testcases.

A scenario with a ``cluster`` column speaks for that cluster. A mesh-wide
scenario loops over the clusters and records each judgement with the cluster it
was about; those judgements give the cluster's verdict. What cannot be
attributed stays with ``mesh``: a mesh-wide scenario that did not hold although
none of its judgements failed (an assertion, a crash, a skip) is reported as
the mesh's verdict only, never turned into per-cluster "held".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from meshproof.report.model import ClusterResult, EvidenceItem, GuaranteeResult
from meshproof.run.results import MESH
from meshproof.run.verdicts import aggregate
from meshproof.sli.verdict import Verdict

__all__ = ["ClusterVerdict", "cluster_verdicts"]


@dataclass(frozen=True, slots=True)
class ClusterVerdict:
    """The verdict of a guarantee in one cluster (or ``mesh``), with why and what shows it."""

    cluster: str
    verdict: Verdict
    reason: str
    fix: str = ""
    could_not_run: bool = False
    evidence: tuple[EvidenceItem, ...] = ()
    duration_s: float = 0.0


def _judged(verdict: str) -> Verdict:
    try:
        return Verdict(verdict)
    except ValueError:
        return Verdict.NOT_MEASURABLE


def _attributable(result: ClusterResult) -> bool:
    """A mesh-wide result whose outcome its per-cluster judgements explain."""
    if not any(j.get("cluster") for j in result.judgements):
        return False
    if result.verdict is Verdict.HELD:
        return True
    return any(
        _judged(str(j.get("verdict"))) is not Verdict.HELD and j.get("cluster")
        for j in result.judgements
    )


def cluster_verdicts(g: GuaranteeResult, order: Sequence[str] = ()) -> list[ClusterVerdict]:
    """Per cluster (in ``order``, the target's, then by name), then ``mesh`` for the rest."""
    verdicts: dict[str, list[Verdict]] = {}
    reasons: dict[str, list[str]] = {}
    evidence: dict[str, list[EvidenceItem]] = {}
    fixes: dict[str, str] = {}
    crashed: set[str] = set()
    seconds: dict[str, float] = {}
    for result in g.clusters:
        spent = sum(s.duration_s for s in result.scenarios)
        if result.cluster != MESH or not _attributable(result):
            key = result.cluster
            verdicts.setdefault(key, []).append(result.verdict)
            reasons.setdefault(key, []).append(result.reason)
            evidence.setdefault(key, []).extend(result.evidence)
            if result.fix:
                fixes.setdefault(key, result.fix)
            if result.could_not_run:
                crashed.add(key)
            seconds[key] = seconds.get(key, 0.0) + spent
            continue
        keys = {str(j.get("cluster") or MESH) for j in result.judgements}
        for j in result.judgements:
            key = str(j.get("cluster") or MESH)
            verdict = _judged(str(j.get("verdict")))
            verdicts.setdefault(key, []).append(verdict)
            if verdict is not Verdict.HELD:
                reasons.setdefault(key, []).append(str(j.get("reason", "")))
        for item in result.evidence:
            # Evidence about no judged cluster (a query, a window) belongs to each of them.
            for key in [item.cluster] if item.cluster in keys else sorted(keys):
                evidence.setdefault(str(key), []).append(item)
        for key in keys:
            # One scenario judged them all: its time is shared, so totals still add up.
            seconds[key] = seconds.get(key, 0.0) + spent / len(keys)
    out = []
    for key, found in verdicts.items():
        verdict = aggregate(found)
        why = [r for r in reasons.get(key, []) if r]
        if not why:
            why = [f"{len(found)} judgement{'s' if len(found) != 1 else ''} held"]
        out.append(
            ClusterVerdict(
                cluster=key,
                verdict=verdict,
                reason="; ".join(dict.fromkeys(why)),
                fix=fixes.get(key, "") if verdict is not Verdict.HELD else "",
                could_not_run=key in crashed,
                evidence=tuple(evidence.get(key, ())),
                duration_s=seconds.get(key, 0.0),
            )
        )
    known = list(order)
    return sorted(
        out,
        key=lambda c: (
            c.cluster == MESH,
            known.index(c.cluster) if c.cluster in known else len(known),
            c.cluster,
        ),
    )
