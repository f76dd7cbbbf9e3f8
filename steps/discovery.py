"""Steps of features/discovery.feature."""

from __future__ import annotations

from pytest_bdd import then

from meshproof.catalog import EffectiveThresholds
from meshproof.checks.discovery import ServiceView, compare, judge_discovery, observe
from meshproof.connections import Connections
from meshproof.errors import WaitTimeout
from meshproof.probe.fleet import ProbeFleet
from meshproof.run.evidence import Evidence
from meshproof.target import Target
from meshproof.timeouts import Timeouts
from meshproof.waiting import eventually


@then("every service under test resolves to the same endpoints in Consul, Kubernetes and an "
      "in-mesh sidecar, in every cluster")
def _(target: Target, connections: Connections, in_mesh: ProbeFleet, timeouts: Timeouts,
      thresholds: EffectiveThresholds, evidence: Evidence) -> None:
    for settings in target.clusters:
        last: list[list[ServiceView]] = [[]]

        def agree(settings=settings, last=last) -> None:  # type: ignore[no-untyped-def]
            last[0] = observe(connections.apis, settings, list(target.namespaces),
                              probe_namespace=in_mesh.namespace,
                              probe_pod=in_mesh.pod_name("mesh"))
            assert not any(compare(v) for v in last[0]), "sources disagree"

        try:
            eventually(agree, timeout=timeouts.discovery_convergence,
                       interval=timeouts.poll_interval,
                       what=f"discovery sources converging on {settings.name}")
        except WaitTimeout:
            pass  # judged below on the last reading
        evidence.judgement(judge_discovery(last[0], cluster=settings.name,
                                           required=thresholds["min_ratio"],
                                           consul_configured=settings.consul is not None),
                           cluster=settings.name)
    evidence.conclude()
