"""A drill's outcome as a scenario's evidence: its timeline, its load and its judgement."""

from __future__ import annotations

from meshproof.chaos.running import DrillOutcome
from meshproof.run.evidence import Evidence

__all__ = ["record_outcome"]


def record_outcome(evidence: Evidence, outcome: DrillOutcome, guarantee_id: str) -> None:
    """Put ``outcome`` into ``evidence``: each timeline moment, each traffic recorder's
    totals as load, the experiment's status, and the judgement of ``guarantee_id``
    (for the cluster the experiment faulted)."""
    cluster = outcome.cluster
    roles = ", ".join(f"{role} {name}" for role, name in sorted(outcome.roles.items()))
    evidence.add("experiment", f"{outcome.experiment} ({roles}): {outcome.status}",
                 cluster=cluster)
    for moment in outcome.timeline:
        evidence.timeline(str(moment["phase"]), str(moment["description"]),
                          cluster=moment.get("cluster"), at=str(moment["at"]))
    for load in outcome.loads:
        evidence.load(requests=int(load["requests"]), failures=int(load["failures"]),
                      rps=float(load["rps"]), source="probe-agent",
                      cluster=str(load["cluster"]))
    for line in outcome.log.splitlines():
        evidence.add("safety", line, cluster=cluster)
    evidence.judgement(outcome.judgements[guarantee_id], cluster=cluster)
