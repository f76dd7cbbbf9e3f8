"""Steps of features/alerts.feature (ALERTS-QUIET; the drill's ALERTS fire under faults)."""

from __future__ import annotations

from pytest_bdd import then

from meshproof.catalog import Catalog, EffectiveThresholds
from meshproof.checks.alerts import judge_alerts_quiet
from meshproof.connections import Connections
from meshproof.run.evidence import Evidence
from meshproof.run.verdicts import NotMeasurable
from meshproof.target import Target


@then("none of the runbook's alert expressions returns a result in any cluster")
def _(target: Target, connections: Connections, catalog: Catalog,
      thresholds: EffectiveThresholds, evidence: Evidence) -> None:
    alerts = list(catalog.alerts)
    for cluster in target.cluster_names:
        prom = connections.prometheus[cluster]
        if prom is None:
            raise NotMeasurable(f"{cluster} has no Prometheus in the target",
                                fix=f"set prometheus for cluster {cluster}")
        evidence.judgement(judge_alerts_quiet(prom, alerts, list(target.cluster_names),
                                              max_firing=int(thresholds["max_firing"])),
                           cluster=cluster)
    evidence.conclude()
