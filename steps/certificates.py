"""Steps of features/certificates.feature."""

from __future__ import annotations

from pytest_bdd import then

from meshproof.catalog import EffectiveThresholds
from meshproof.checks.certs import judge_certificates
from meshproof.connections import Connections
from meshproof.run.evidence import Evidence
from meshproof.target import Target


@then("every cert-manager certificate is Ready, renewing and outside the expiry horizon in "
      "every cluster")
def _(target: Target, connections: Connections, thresholds: EffectiveThresholds,
      evidence: Evidence) -> None:
    for cluster in target.cluster_names:
        evidence.judgement(judge_certificates(
            connections.api(cluster), min_days=thresholds["min_days"],
            min_renewed_ratio=thresholds["min_renewed_ratio"]), cluster=cluster)
    evidence.conclude()
