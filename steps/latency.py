"""Steps of features/latency.feature."""

from __future__ import annotations

from pytest_bdd import then

from meshproof.catalog import EffectiveThresholds
from meshproof.checks.latency import judge_cross_cluster_latency
from meshproof.connections import Connections
from meshproof.run.evidence import Evidence
from meshproof.run.verdicts import NotMeasurable
from meshproof.target import Target


@then("for every ordered pair of clusters the share of requests at or under the bound meets "
      "the quantile")
def _(target: Target, connections: Connections, thresholds: EffectiveThresholds,
      evidence: Evidence) -> None:
    names = list(target.cluster_names)
    if len(names) < 2:
        raise NotMeasurable("the target has one cluster: no cross-cluster traffic",
                            fix="list both clusters of the mesh in the target")
    for source in names:
        prom = connections.prometheus[source]
        if prom is None:
            raise NotMeasurable(f"{source} has no Prometheus in the target",
                                fix=f"set prometheus for cluster {source}")
        for destination in (n for n in names if n != source):
            evidence.judgement(judge_cross_cluster_latency(
                prom, source, destination, window_s=thresholds.window_s,
                quantile=thresholds["quantile"], max_ms=thresholds["max_ms"],
                min_samples=int(thresholds["min_samples"])), cluster=source)
    evidence.conclude()
