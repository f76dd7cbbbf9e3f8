"""Steps of features/mtls.feature."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_bdd import then, when

from meshproof.catalog import EffectiveThresholds
from meshproof.checks.handshake import judge_handshakes
from meshproof.checks.mtls import (
    judge_caller_identity,
    judge_plaintext_refused,
    mutual_tls_share,
    strict_service_urls,
)
from meshproof.connections import Connections
from meshproof.probe.fleet import ProbeFleet
from meshproof.run.evidence import Evidence
from meshproof.run.verdicts import NotMeasurable
from meshproof.target import Target

PLAINTEXT_REQUESTS = 5
IDENTITY_REQUESTS = 10
ECHO_URL = "http://httpbin.production:8000/headers"


@pytest.fixture
def plaintext_results() -> dict[str, dict[str, list[dict[str, Any]]]]:
    return {}


@when("a client outside the mesh sends plaintext requests to each STRICT workload")
def _(target: Target, connections: Connections, probes: ProbeFleet,
      plaintext_results: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    if not target.strict_namespaces:
        raise NotMeasurable("the target promises STRICT mTLS in no namespace",
                            fix="list the namespaces under strict_namespaces in the target")
    for cluster in target.cluster_names:
        for url in strict_service_urls(connections.api(cluster), target.strict_namespaces):
            plaintext_results.setdefault(cluster, {})[url] = probes.request(
                cluster, "plain", {"url": url, "count": PLAINTEXT_REQUESTS, "timeout": 5}
            )["results"]


@then("every plaintext request is reset in every cluster")
def _(target: Target, thresholds: EffectiveThresholds, evidence: Evidence,
      plaintext_results: dict[str, dict[str, list[dict[str, Any]]]]) -> None:
    for cluster in target.cluster_names:
        for url, results in plaintext_results.get(cluster, {}).items():
            evidence.judgement(judge_plaintext_refused(
                results, url=url, max_accepted=thresholds["max_plaintext_accepted"]),
                cluster=cluster)
    evidence.conclude()


@then("all requests into STRICT namespaces arrived over mutual TLS")
def _(target: Target, connections: Connections, thresholds: EffectiveThresholds,
      evidence: Evidence) -> None:
    for cluster in target.cluster_names:
        prom = connections.prometheus[cluster]
        if prom is None:
            raise NotMeasurable(f"{cluster} has no Prometheus in the target",
                                fix=f"set prometheus for cluster {cluster}")
        for namespace in target.strict_namespaces:
            evidence.judgement(mutual_tls_share(
                prom, namespace=namespace, window_s=thresholds.window_s,
                required=thresholds["min_mutual_tls_ratio"]), cluster=cluster)
    evidence.conclude()


@then("the inbound mutual TLS handshakes succeed at the guarantee's rate in every cluster")
def _(target: Target, connections: Connections, thresholds: EffectiveThresholds,
      evidence: Evidence) -> None:
    for cluster in target.cluster_names:
        prom = connections.prometheus[cluster]
        if prom is None:
            raise NotMeasurable(f"{cluster} has no Prometheus in the target",
                                fix=f"set prometheus for cluster {cluster}")
        evidence.judgement(judge_handshakes(prom, window_s=thresholds.window_s,
                                            required=thresholds["min_ratio"]), cluster=cluster)
    evidence.conclude()


@pytest.fixture
def echo_results() -> dict[str, list[dict[str, Any]]]:
    return {}


@when("an in-mesh client calls an echo service in its own cluster and in the other cluster")
def _(target: Target, in_mesh: ProbeFleet,
      echo_results: dict[str, list[dict[str, Any]]]) -> None:
    for cluster in target.cluster_names:
        echo_results[cluster] = in_mesh.request(
            cluster, "mesh", {"url": ECHO_URL, "count": IDENTITY_REQUESTS, "timeout": 10,
                              "keep_body": 4096})["results"]


@then("the server sees the caller's SPIFFE identity every time")
def _(target: Target, guarantee: Any, probes: ProbeFleet, evidence: Evidence,
      echo_results: dict[str, list[dict[str, Any]]]) -> None:
    domain = guarantee.parameters.get("trust_domain", "cluster.local")
    expected = f"spiffe://{domain}/ns/{probes.namespace}/sa/default"
    for cluster in target.cluster_names:
        for result in echo_results.get(cluster, []):
            evidence.judgement(judge_caller_identity(result, expected_spiffe=expected),
                               cluster=cluster)
    evidence.conclude()
