"""Steps of features/control_plane.feature beyond availability (MULTICLUSTER-SYNC)."""

from __future__ import annotations

from pytest_bdd import then

from meshproof.checks.multicluster import judge_remote_clusters
from meshproof.connections import Connections
from meshproof.run.evidence import Evidence
from meshproof.run.verdicts import NotMeasurable
from meshproof.target import Target


@then("every cluster has a remote secret for each other cluster and its istiod manages them")
def _(target: Target, connections: Connections, evidence: Evidence) -> None:
    for cluster in target.cluster_names:
        prom = connections.prometheus[cluster]
        if prom is None:
            raise NotMeasurable(f"{cluster} has no Prometheus in the target",
                                fix=f"set prometheus for cluster {cluster}")
        others = [c for c in target.cluster_names if c != cluster]
        evidence.judgement(judge_remote_clusters(connections.api(cluster), prom,
                                                 others=others), cluster=cluster)
    evidence.conclude()
