"""Steps of features/proxies.feature."""

from __future__ import annotations

from pytest_bdd import then

from meshproof.catalog import EffectiveThresholds
from meshproof.checks.proxies import judge_proxy_health
from meshproof.connections import Connections
from meshproof.run.evidence import Evidence
from meshproof.target import Target


@then("the share of Ready and synced sidecars meets the guarantee in every cluster")
def _(target: Target, connections: Connections, thresholds: EffectiveThresholds,
      evidence: Evidence) -> None:
    for cluster in target.cluster_names:
        evidence.judgement(judge_proxy_health(
            connections.api(cluster), namespaces=list(target.namespaces),
            required=thresholds["min_ratio"]), cluster=cluster)
    evidence.conclude()
