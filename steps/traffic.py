"""Steps of features/traffic.feature."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pytest_bdd import then, when

from meshproof.catalog import EffectiveThresholds, Guarantee
from meshproof.checks.routing import canary_route, judge_canary, judge_weighted_split
from meshproof.checks.workload import burst
from meshproof.connections import Connections
from meshproof.probe.fleet import ProbeFleet
from meshproof.run.evidence import Evidence
from meshproof.run.verdicts import NotMeasurable
from meshproof.target import Target

PARALLEL_CALLS = 12


@pytest.fixture
def routed() -> dict[str, dict[str, Any]]:
    return {}


@when("an in-mesh client sends canary requests and plain requests to the routed service")
def _(target: Target, connections: Connections, in_mesh: ProbeFleet, guarantee: Guarantee,
      thresholds: EffectiveThresholds, routed: dict[str, dict[str, Any]]) -> None:
    header, value = str(guarantee.parameters["header"]), str(guarantee.parameters["header_value"])
    total = int(thresholds["min_samples"])
    urls: dict[str, str] = {}
    for cluster in target.cluster_names:
        url = canary_route(connections.api(cluster), target.namespaces, header, value,
                           str(guarantee.parameters["path"]))
        if url is None:
            raise NotMeasurable(f"no VirtualService in {', '.join(target.namespaces)} on "
                                f"{cluster} routes header {header}: {value}",
                                fix="apply the runbook's canary VirtualService")
        urls[cluster] = url

    def one_cluster(cluster: str) -> dict[str, Any]:
        url = urls[cluster]
        return {
            "url": url,
            "canary": burst(in_mesh, cluster, "mesh", {"url": url, "headers": {header: value}},
                            total=total, parallel=PARALLEL_CALLS),
            "plain": burst(in_mesh, cluster, "mesh", {"url": url}, total=total,
                           parallel=PARALLEL_CALLS),
        }

    # The clusters' requests run side by side, each cluster's probe with as many calls in
    # flight as it had when the clusters took turns.
    with ThreadPoolExecutor(max_workers=len(urls)) as pool:
        routed.update(zip(urls, pool.map(one_cluster, urls), strict=True))


@then("every canary request is answered by the canary version")
def _(target: Target, thresholds: EffectiveThresholds, evidence: Evidence,
      routed: dict[str, dict[str, Any]]) -> None:
    for cluster in target.cluster_names:
        evidence.judgement(judge_canary(routed[cluster]["canary"], expected="v2",
                                        what=f"canary requests to {routed[cluster]['url']}",
                                        min_total=int(thresholds["min_samples"])),
                           cluster=cluster)
    evidence.conclude()


@then("the plain requests split by the route's weights")
def _(target: Target, guarantee: Guarantee, thresholds: EffectiveThresholds,
      evidence: Evidence, routed: dict[str, dict[str, Any]]) -> None:
    weights = {k: float(v) for k, v in dict(guarantee.parameters["weights"]).items()}
    for cluster in target.cluster_names:
        evidence.judgement(judge_weighted_split(
            routed[cluster]["plain"], weights=weights, alpha=thresholds["min_p_value"],
            tolerance=float(guarantee.parameters["split_tolerance"]),
            power=float(guarantee.parameters["split_power"]),
            what=f"plain requests to {routed[cluster]['url']}"), cluster=cluster)
    evidence.conclude()
