"""Steps of features/ingress.feature."""

from __future__ import annotations

import pytest
from pytest_bdd import then, when

from meshproof.catalog import Guarantee
from meshproof.checks.ingress import IngressFacts, gateway_address, judge_ingress, probe_ingress
from meshproof.connections import Connections
from meshproof.run.evidence import Evidence
from meshproof.target import Target
from meshproof.timeouts import Timeouts


@pytest.fixture
def ingress_facts() -> dict[str, IngressFacts]:
    return {}


@when("a client outside the mesh calls the public host through each cluster's ingress gateway")
def _(target: Target, connections: Connections, guarantee: Guarantee, timeouts: Timeouts,
      ingress_facts: dict[str, IngressFacts]) -> None:
    host, prefix = str(guarantee.parameters["host"]), str(guarantee.parameters["prefix"])
    for cluster in target.cluster_names:
        address = gateway_address(connections.api(cluster))
        ingress_facts[cluster] = probe_ingress(address, host=host, prefix=prefix,
                                               timeout=timeouts.api_request) if address \
            else IngressFacts(address="")


@then("http is redirected to https, the configured certificate is served and the API prefix "
      "reaches its backend")
def _(target: Target, connections: Connections, guarantee: Guarantee, evidence: Evidence,
      ingress_facts: dict[str, IngressFacts]) -> None:
    for cluster in target.cluster_names:
        evidence.judgement(judge_ingress(
            connections.api(cluster), ingress_facts[cluster],
            host=str(guarantee.parameters["host"]),
            credential=str(guarantee.parameters["credential"]),
            backend_account=str(guarantee.parameters["backend"])), cluster=cluster)
    evidence.conclude()
