"""Steps of features/proxies.feature."""

from __future__ import annotations

from pytest_bdd import then

from meshproof.catalog import EffectiveThresholds
from meshproof.checks.memory import judge_proxy_memory
from meshproof.checks.proxies import judge_proxy_health
from meshproof.connections import Connections
from meshproof.run.evidence import Evidence
from meshproof.run.verdicts import NotMeasurable
from meshproof.target import Target


@then("the share of Ready and synced sidecars meets the guarantee in every cluster")
def _(target: Target, connections: Connections, thresholds: EffectiveThresholds,
      evidence: Evidence) -> None:
    for cluster in target.cluster_names:
        evidence.judgement(judge_proxy_health(
            connections.api(cluster), namespaces=list(target.namespaces),
            required=thresholds["min_ratio"]), cluster=cluster)
    evidence.conclude()


@then("no sidecar or gateway proxy has allocated more memory than the guarantee allows in any "
      "cluster")
def _(target: Target, connections: Connections, thresholds: EffectiveThresholds,
      evidence: Evidence) -> None:
    for cluster in target.cluster_names:
        prom = connections.prometheus[cluster]
        if prom is None:
            raise NotMeasurable(f"{cluster} has no Prometheus in the target",
                                fix=f"set prometheus for cluster {cluster}")
        evidence.judgement(judge_proxy_memory(prom, max_bytes=thresholds["max_bytes"]),
                           cluster=cluster)
    evidence.conclude()
