"""Steps of features/control_plane.feature and features/gateways.feature (CP-AVAIL, GW-AVAIL)."""

from __future__ import annotations

from pytest_bdd import then

from meshproof.catalog import EffectiveThresholds
from meshproof.checks.availability import judge_up_availability
from meshproof.connections import Connections
from meshproof.run.evidence import Evidence
from meshproof.run.verdicts import NotMeasurable
from meshproof.target import Target

STEP_S = 5.0
"""Range-query resolution: one scrape interval of the mesh's Prometheus, or finer."""


def _judge_up(app: str, target: Target, connections: Connections,
              thresholds: EffectiveThresholds, evidence: Evidence) -> None:
    for cluster in target.cluster_names:
        prom = connections.prometheus[cluster]
        if prom is None:
            raise NotMeasurable(f"{cluster} has no Prometheus in the target",
                                fix=f"set prometheus for cluster {cluster}")
        evidence.judgement(judge_up_availability(
            prom, app=app, window_s=thresholds.window_s, required=thresholds["min_ratio"],
            step_s=STEP_S), cluster=cluster)
    evidence.conclude()


@then("istiod was up for the guarantee's share of its window in every cluster")
def _(target: Target, connections: Connections, thresholds: EffectiveThresholds,
      evidence: Evidence) -> None:
    _judge_up("istiod", target, connections, thresholds, evidence)


@then("the east-west gateway was up for the guarantee's share of its window in every cluster")
def _(target: Target, connections: Connections, thresholds: EffectiveThresholds,
      evidence: Evidence) -> None:
    _judge_up("istio-eastwestgateway", target, connections, thresholds, evidence)
