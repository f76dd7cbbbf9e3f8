"""Steps of features/injection.feature."""

from __future__ import annotations

from pytest_bdd import then

from meshproof.catalog import EffectiveThresholds
from meshproof.checks.injection import judge_injection
from meshproof.connections import Connections
from meshproof.probe.fleet import ProbeFleet
from meshproof.run.evidence import Evidence
from meshproof.target import Target


@then("every pod in the injection-enabled namespaces has an istio-proxy container, the probe's "
      "new pod included")
def _(target: Target, connections: Connections, probes: ProbeFleet,
      thresholds: EffectiveThresholds, evidence: Evidence) -> None:
    for cluster in target.cluster_names:
        api = connections.api(cluster)
        fresh = api.get(f"/api/v1/namespaces/{probes.namespace}/pods/"
                        f"{probes.pod_name('mesh')}")
        evidence.judgement(judge_injection(api, required=thresholds["min_ratio"],
                                           fresh_pod=fresh), cluster=cluster)
    evidence.conclude()
