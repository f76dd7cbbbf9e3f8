"""Session fixtures shared by the areas: connections, the probe agents, the nightly traffic."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from pytest_bdd import given

from meshproof.catalog import Catalog
from meshproof.checks.workload import (
    TrafficWindow,
    assert_recorded,
    cross_cluster_volume,
    drive,
    service_urls,
)
from meshproof.connections import Connections, open_connections
from meshproof.load import BackgroundLoad
from meshproof.probe.fleet import DEFAULT_IMAGE, ProbeFleet
from meshproof.run.verdicts import NotMeasurable
from meshproof.target import Target
from meshproof.timeouts import Timeouts
from meshproof.waiting import eventually
from steps.latency import XC_LATENCY, load_duration_s

SAMPLE_URL = "http://helloworld.sample:5000/hello"
"""The cross-cluster sample service (clusters/workloads): endpoints in both clusters."""
STRICT_TRAFFIC = 40
"""Requests to each service port of the STRICT namespaces (their mutual TLS share)."""
PARALLEL_CALLS = 6


@pytest.fixture(scope="session")
def run_id() -> str:
    return os.environ.get("MESHPROOF_RUN_ID") or uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def connections(target: Target, timeouts: Timeouts) -> Connections:
    return open_connections(target, timeouts=timeouts)


@pytest.fixture(scope="session")
def probes(target: Target, connections: Connections, run_id: str,
           timeouts: Timeouts) -> Iterator[ProbeFleet]:
    fleet = ProbeFleet(connections.apis, run_id, timeouts,
                       image=target.probe.image or DEFAULT_IMAGE)
    try:
        fleet.deploy()
        yield fleet
    finally:
        fleet.remove()


WARMUP = 10
"""Requests per URL before the measured traffic: the probe's series exist in Prometheus
before the counting starts, so ``increase()`` misses nothing of the measured traffic."""


def _settle(window: TrafficWindow, connections: Connections, probes: ProbeFleet,
            timeouts: Timeouts) -> None:
    for cluster, results in window.results.items():
        prom = connections.prometheus[cluster]
        if prom is None:
            continue
        answered = sum(1 for r in results if r.get("status"))
        eventually(lambda p=prom, n=answered: assert_recorded(
            p, namespace=probes.namespace, answered=n),
            timeout=timeouts.scrape_settle, interval=timeouts.poll_interval,
            what=f"Prometheus of {cluster} recording the probes' traffic")


@pytest.fixture
def in_mesh(target: Target, probes: ProbeFleet) -> ProbeFleet:
    """The probes, when the in-mesh copy really joined the mesh in every cluster."""
    for cluster in target.cluster_names:
        if not probes.injected(cluster):
            raise NotMeasurable(
                f"the probe agent got no sidecar in {cluster}, so nothing can be measured from "
                "inside the mesh", fix="make sidecar injection work again (see INJECTION)")
    return probes


@pytest.fixture(scope="session")
def mesh_traffic(target: Target, connections: Connections, probes: ProbeFleet,
                 timeouts: Timeouts, catalog: Catalog,
                 ingress_load: BackgroundLoad) -> TrafficWindow:
    """The probes' traffic, made while ``ingress_load`` (steps/latency.py) runs beside it.

    Its volume is what XC-LATENCY's minimum sample needs across every ordered pair of
    clusters, and it is spread over the time the ingress load takes to reach its own
    sample: the probes add measured requests to the load, never a burst of their own
    that would make the latency the probes' queue rather than the mesh's.
    """
    first = connections.api(target.cluster_names[0])
    latency = target.effective_thresholds(catalog, XC_LATENCY)
    plan = {SAMPLE_URL: cross_cluster_volume(int(latency["min_samples"]),
                                             len(target.cluster_names))}
    plan.update({url: STRICT_TRAFFIC
                 for url in service_urls(first, list(target.strict_namespaces))})
    clusters = list(target.cluster_names)
    warmup = drive(probes, clusters, dict.fromkeys(plan, WARMUP), parallel=2)
    _settle(warmup, connections, probes, timeouts)
    window = drive(probes, clusters, plan, parallel=PARALLEL_CALLS,
                   seconds=load_duration_s(latency))
    window.start = warmup.start
    for cluster, results in warmup.results.items():
        window.results[cluster] = results + window.results.get(cluster, [])
    _settle(window, connections, probes, timeouts)
    ingress_load.release()
    return window


@given("the probe agents are running in every cluster")
def _(probes: ProbeFleet) -> None:
    assert probes.deployed, "no probe agent was deployed"


@given("mesh traffic has run in every cluster")
def _(in_mesh: ProbeFleet, mesh_traffic: TrafficWindow) -> None:
    assert any(mesh_traffic.results.values()), "the probes sent no traffic"
