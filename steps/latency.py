"""Steps of features/latency.feature: the source side's Istio histogram, measured while
Locust loads every cluster's ingress gateway, and the clients' exact latencies as its
cross-check (docs/load.md)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pytest_bdd import given, then

from meshproof.catalog import Catalog, EffectiveThresholds
from meshproof.checks.latency import (
    ingress_load_plan,
    judge_cross_cluster_latency,
    judge_ingress_load,
)
from meshproof.connections import Connections
from meshproof.errors import MeshproofError
from meshproof.load import BackgroundLoad, LoadPlan, LoadProgress
from meshproof.run.evidence import Evidence
from meshproof.run.items import guarantee_ids_of
from meshproof.run.verdicts import NotMeasurable, aggregate
from meshproof.sli.verdict import Judgement, Verdict
from meshproof.target import Target
from meshproof.timeouts import Timeouts

XC_LATENCY = "XC-LATENCY"
PUBLIC_ROUTE = "INGRESS"
"""The guarantee whose public route (host, prefix, backend, credential) the load uses."""
LOAD_USERS = 2
"""Locust users per ingress gateway."""
LOAD_USER_RPS = 24.0
"""Requests a second per user, paced, so the load is the same on a slow or busy machine."""


def load_duration_s(thresholds: EffectiveThresholds) -> float:
    """How long the ingress load takes to reach XC-LATENCY's sample in every cluster."""
    return float(thresholds["min_samples"]) / (LOAD_USERS * LOAD_USER_RPS)


@pytest.fixture(scope="session")
def ingress_load(request: pytest.FixtureRequest, target: Target, connections: Connections,
                 catalog: Catalog, timeouts: Timeouts,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundLoad]:
    """Locust through every cluster's ingress gateway, started beside the nightly traffic.

    ``mesh_traffic`` (steps/mesh.py) asks for it, so the probes' traffic is
    measured under this load, and releases it when that traffic is done; each
    run then stops once it has XC-LATENCY's sample size, and runs at most the
    guarantee's window. Idle when the run does not check XC-LATENCY.
    """
    if not any(XC_LATENCY in guarantee_ids_of(item) for item in request.session.items):
        yield BackgroundLoad({}, not_started=dict.fromkeys(
            target.cluster_names, f"the run does not check {XC_LATENCY}"))
        return
    thresholds = target.effective_thresholds(catalog, XC_LATENCY)
    route = catalog.get(PUBLIC_ROUTE).parameters
    workdir = tmp_path_factory.mktemp("xc-latency-load")
    plans: dict[str, LoadPlan] = {}
    not_started: dict[str, str] = {}
    for cluster in target.cluster_names:
        try:
            plan = ingress_load_plan(
                connections.api(cluster), host=str(route["host"]),
                path=f"{str(route['prefix']).rstrip('/')}/headers",
                credential=str(route["credential"]), users=LOAD_USERS, user_rps=LOAD_USER_RPS,
                run_time_s=thresholds.window_s, workdir=workdir / cluster, timeouts=timeouts)
        except MeshproofError as exc:
            plan = f"{cluster}: {exc}"
        if isinstance(plan, str):
            not_started[cluster] = plan
        else:
            plans[cluster] = plan
    needed = int(thresholds["min_samples"])

    def enough(progress: LoadProgress) -> bool:
        return progress.requests - progress.failures >= needed

    load = BackgroundLoad(plans, enough=enough, not_started=not_started)
    try:
        yield load
    finally:
        load.close()


@pytest.fixture
def histogram_verdicts() -> dict[str, Verdict]:
    """The Istio histogram's verdict per source cluster, for the clients' cross-check."""
    return {}


@given("Locust load runs through every cluster's ingress gateway beside the mesh traffic")
def _(ingress_load: BackgroundLoad, evidence: Evidence) -> None:
    evidence.add("load_started_at", ingress_load.started_at)
    for cluster, why in ingress_load.not_started.items():
        evidence.add("load_not_started", why, cluster=cluster)


@then("for every ordered pair of clusters the share of requests at or under the bound meets "
      "the quantile")
def _(target: Target, connections: Connections, thresholds: EffectiveThresholds,
      evidence: Evidence, histogram_verdicts: dict[str, Verdict]) -> None:
    names = list(target.cluster_names)
    if len(names) < 2:
        raise NotMeasurable("the target has one cluster: no cross-cluster traffic",
                            fix="list both clusters of the mesh in the target")
    for source in names:
        prom = connections.prometheus[source]
        if prom is None:
            raise NotMeasurable(f"{source} has no Prometheus in the target",
                                fix=f"set prometheus for cluster {source}")
        judgements = [evidence.judgement(judge_cross_cluster_latency(
            prom, source, destination, window_s=thresholds.window_s,
            quantile=thresholds["quantile"], max_ms=thresholds["max_ms"],
            min_samples=int(thresholds["min_samples"])), cluster=source)
            for destination in names if destination != source]
        histogram_verdicts[source] = aggregate(j.verdict for j in judgements)


@then("through every cluster's ingress gateway the clients' exact share at or under the bound "
      "meets the quantile")
def _(target: Target, connections: Connections, catalog: Catalog,
      thresholds: EffectiveThresholds, timeouts: Timeouts, evidence: Evidence,
      ingress_load: BackgroundLoad, histogram_verdicts: dict[str, Verdict]) -> None:
    backend = str(catalog.get(PUBLIC_ROUTE).parameters["backend"])
    results = ingress_load.results()
    for cluster in target.cluster_names:
        outcome = results.get(cluster)
        prom = connections.prometheus[cluster]
        if outcome is None or isinstance(outcome, MeshproofError) or prom is None:
            why = (ingress_load.not_started.get(cluster) or
                   (f"{cluster} has no Prometheus in the target" if prom is None else
                    f"the load could not run: {outcome}"))
            evidence.judgement(Judgement(Verdict.NOT_MEASURABLE, why), cluster=cluster)
            continue
        evidence.load(requests=outcome.requests, failures=outcome.failures, rps=outcome.rps,
                      percentiles_ms=outcome.exact_percentiles_ms, users=LOAD_USERS,
                      cluster=cluster)
        evidence.add("load", {"command": " ".join(outcome.command),
                              "started": outcome.started_at, "ended": outcome.ended_at,
                              "stopped_early": outcome.stopped_early,
                              "failures_by_kind": dict(outcome.failures_by_kind)},
                     cluster=cluster)
        evidence.judgement(judge_ingress_load(
            prom, cluster, outcome, backend=backend, quantile=thresholds["quantile"],
            max_ms=thresholds["max_ms"], min_samples=int(thresholds["min_samples"]),
            server=histogram_verdicts.get(cluster), timeouts=timeouts), cluster=cluster)
    evidence.conclude()
