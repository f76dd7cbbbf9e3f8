"""XC-LATENCY: cross-cluster request duration, from the source side's Istio histogram, and
its cross-check: the exact latencies Locust's clients see through each ingress gateway."""

from __future__ import annotations

import base64
import math
import time
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

from meshproof.checks.ingress import gateway_address
from meshproof.clients.kube import ClusterApi, NotFoundError
from meshproof.clients.prometheus import PromQL
from meshproof.errors import WaitTimeout
from meshproof.load import LoadPlan, LoadResult, bundled_locustfile, exact_percentile
from meshproof.sli.compare import meets_share
from meshproof.sli.latency import judge_latency
from meshproof.sli.verdict import Judgement, Verdict
from meshproof.timeouts import Timeouts
from meshproof.waiting import eventually

__all__ = [
    "INGRESS_NAMESPACE",
    "INGRESS_WORKLOAD",
    "assert_gateway_scraped",
    "cross_cluster_buckets",
    "ingress_crossing",
    "ingress_crossing_query",
    "ingress_last_scrape_query",
    "ingress_load_plan",
    "judge_client_latency",
    "judge_cross_cluster_latency",
    "judge_ingress_load",
    "latency_query",
]


def latency_query(source: str, destination: str, window_s: int) -> str:
    """Buckets of requests from ``source`` to ``destination`` over the window.

    ``reporter="source"``: the runbook's query counts every request twice
    (client and server side; FACTS.md). Pairs are named one by one because
    PromQL cannot compare two labels of one series.
    """
    selector = (f'reporter="source",source_cluster="{source}",'
                f'destination_cluster="{destination}"')
    return (f"sum by (le) (increase(istio_request_duration_milliseconds_bucket{{{selector}}}"
            f"[{window_s}s]))")


def cross_cluster_buckets(prom: PromQL, source: str, destination: str,
                          window_s: int) -> list[tuple[float, float]]:
    buckets = []
    for sample in prom.instant(latency_query(source, destination, window_s)):
        le = sample.labels.get("le", "")
        bound = math.inf if le == "+Inf" else float(le)
        buckets.append((bound, sample.value))
    return sorted(buckets)


def judge_cross_cluster_latency(prom: PromQL, source: str, destination: str, *,
                                window_s: int, quantile: float, max_ms: float,
                                min_samples: int) -> Judgement:
    judgement = judge_latency(
        cross_cluster_buckets(prom, source, destination, window_s), threshold_ms=max_ms,
        quantile=quantile, min_samples=min_samples,
        what=f"requests {source} → {destination}")
    judgement.evidence.update({"query": latency_query(source, destination, window_s),
                               "prometheus": prom.cluster, "window_s": window_s})
    return judgement


# The client-side cross-check: Locust's exact latencies through each cluster's ingress gateway.

INGRESS_WORKLOAD = "istio-ingressgateway"
"""The ingress gateway's workload (Istio's default name), as its metrics' ``source_workload``."""
INGRESS_NAMESPACE = "istio-system"


def ingress_load_plan(api: ClusterApi, *, host: str, path: str, credential: str, users: int,
                      user_rps: float, run_time_s: float, workdir: Path,
                      timeouts: Timeouts) -> LoadPlan | str:
    """Locust through ``api``'s cluster's ingress gateway (``loadtests/ingress.py``), or why not.

    The gateway is reached at its LoadBalancer address, as clients outside the
    mesh reach it, with the public host name for Host, SNI and the certificate
    check; the CA is the one cert-manager put into the gateway's credential
    (``ca.crt``), else the system's.
    """
    address = gateway_address(api, namespace=INGRESS_NAMESPACE, service=INGRESS_WORKLOAD)
    if not address:
        return (f"{api.cluster}: service {INGRESS_NAMESPACE}/{INGRESS_WORKLOAD} has no "
                "LoadBalancer address to send the load to")
    workdir.mkdir(parents=True, exist_ok=True)
    options = {"connect-to": address, "ingress-path": path, "user-rps": f"{user_rps:g}"}
    try:
        secret = api.get(f"/api/v1/namespaces/{INGRESS_NAMESPACE}/secrets/{credential}")
    except NotFoundError:
        secret = {}
    ca = (secret.get("data") or {}).get("ca.crt")
    if ca:
        ca_file = workdir / "ca.crt"
        ca_file.write_bytes(base64.b64decode(ca))
        options["ca-file"] = str(ca_file)
    return LoadPlan(locustfile=bundled_locustfile("ingress"), host=f"https://{host}",
                    users=users, spawn_rate=float(users), run_time_s=run_time_s,
                    options=options, output_dir=workdir / "locust", timeouts=timeouts)


def _ingress_requests(cluster: str, backend: str) -> str:
    """The gateway of ``cluster``'s request counter series towards ``backend``."""
    return (f'istio_requests_total{{reporter="source",source_cluster="{cluster}",'
            f'source_workload="{INGRESS_WORKLOAD}",destination_service_name="{backend}"}}')


def ingress_crossing_query(cluster: str, backend: str, window_s: int) -> str:
    """The ingress gateway's requests to ``backend`` over the window, by serving cluster."""
    return (f"sum by (destination_cluster) (increase({_ingress_requests(cluster, backend)}"
            f"[{window_s}s]))")


def ingress_last_scrape_query(cluster: str, backend: str) -> str:
    """When Prometheus last scraped the ingress gateway's series of requests to ``backend``."""
    return f"max(timestamp({_ingress_requests(cluster, backend)}))"


def assert_gateway_scraped(prom: PromQL, cluster: str, backend: str, *, since: float) -> None:
    """Prometheus scraped the gateway's series towards ``backend`` after ``since`` (epoch s)."""
    last = prom.scalar(ingress_last_scrape_query(cluster, backend))
    assert last is not None and last >= since, (
        f"{cluster}: the ingress gateway's requests to {backend} were last scraped at {last}, "
        f"before {since:.0f}")


def ingress_crossing(prom: PromQL, cluster: str, backend: str,
                     window_s: int) -> dict[str, float]:
    """Requests the ingress gateway of ``cluster`` sent to ``backend``, by serving cluster."""
    return {sample.labels.get("destination_cluster", "unknown"): sample.value
            for sample in prom.instant(ingress_crossing_query(cluster, backend, window_s))}


def judge_client_latency(ok_latencies_ms: Sequence[float], *, failures: int,
                         served_by: Mapping[str, float] | None, cluster: str, quantile: float,
                         max_ms: float, min_samples: int,
                         server: Verdict | None = None) -> Judgement:
    """The clients' side of XC-LATENCY: Locust's exact latencies through ``cluster``'s gateway.

    ``ok_latencies_ms`` are the successful requests' exact latencies (sorted);
    failed requests are counted, not timed: an error is not a fast answer.
    ``served_by`` is the gateway's own count of those requests by serving
    cluster. A client request includes the ingress hop, so its latency is at
    least what the mesh spent on it; the clients' share at or under ``max_ms``
    must reach ``quantile`` as the histogram's must (docs/load.md). The load can
    check the cross-cluster bound only when at least ``1 - quantile`` of it
    crossed to another cluster: with fewer, even all of those slow would leave
    the clients' share above the quantile, so that is not measurable.
    ``server`` is the histogram's verdict for the pairs from ``cluster``, named
    when the two disagree.
    """
    latencies = sorted(ok_latencies_ms)
    answered = len(latencies)
    label = f"p{quantile * 100:g}"
    evidence: dict[str, Any] = {
        "client_requests": answered + failures, "client_failures": failures,
        "client_threshold_ms": max_ms, "client_quantile": quantile,
        "client_min_samples": min_samples, "served_by": dict(served_by or {}),
    }
    what = f"clients through the ingress gateway of {cluster}"
    if not answered:
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"{what}: none of {failures} requests succeeded, so none was timed",
                         evidence)
    served = sum((served_by or {}).values())
    crossed = sum(v for k, v in (served_by or {}).items() if k != cluster)
    if served <= 0:
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"{what}: the gateway's metrics show none of the load, so whether it "
                         "crossed clusters is unknown", evidence)
    crossed_share = crossed / served
    evidence["client_crossed_share"] = crossed_share
    # Exactly, with the quantile read as the decimal it is written as (as meets_share does).
    if Fraction(crossed) < (1 - Fraction(repr(quantile))) * Fraction(served):
        return Judgement(Verdict.NOT_MEASURABLE,
                         f"{what}: only {_pct(crossed_share)} of the load crossed to another "
                         f"cluster, too few for the clients to see the cross-cluster {label}",
                         evidence)
    at_or_under = bisect_right(latencies, max_ms)
    share = at_or_under / answered
    exact = exact_percentile(latencies, quantile)
    evidence.update(client_share_at_or_under=share, client_exact_quantile_ms=exact)
    measured = (f"{what}: {_pct(share)} of {answered} answered requests took <= {max_ms:g} ms "
                f"(exact {label} = {exact:.4g} ms; {_pct(crossed_share)} of the load crossed "
                "clusters)")
    if answered < min_samples:
        return Judgement(Verdict.INCONCLUSIVE,
                         f"{measured}; {min_samples} answered requests needed to judge", evidence)
    if meets_share(at_or_under, answered, quantile):
        return Judgement(Verdict.HELD, f"{measured}; {label} needs >= {_pct(quantile)}",
                         evidence)
    disagree = ("; the Istio histogram held, so the clients see latency the proxies do not "
                "record" if server is Verdict.HELD else "")
    return Judgement(Verdict.VIOLATED,
                     f"{measured}; {label} needs >= {_pct(quantile)}{disagree}", evidence)


def _pct(share: float) -> str:
    return f"{share * 100:.4g}%"


def judge_ingress_load(prom: PromQL, cluster: str, result: LoadResult, *, backend: str,
                       quantile: float, max_ms: float, min_samples: int,
                       server: Verdict | None, timeouts: Timeouts) -> Judgement:
    """``judge_client_latency`` for one finished load through ``cluster``'s ingress gateway.

    Waits (``scrape_settle``) for a scrape of the gateway after the load ended,
    then asks the gateway's metrics which clusters served the load.
    """
    ended = result.ended_at.timestamp()
    try:
        eventually(lambda: assert_gateway_scraped(prom, cluster, backend, since=ended),
                   timeout=timeouts.scrape_settle, interval=timeouts.poll_interval,
                   what=f"Prometheus of {cluster} scraping the ingress gateway after the load")
    except WaitTimeout:
        pass  # the share of the load that crossed is then taken from what was scraped
    since = math.ceil(time.time() - result.started_at.timestamp()) + 1
    judgement = judge_client_latency(
        result.ok_latencies_ms, failures=result.failures,
        served_by=ingress_crossing(prom, cluster, backend, since), cluster=cluster,
        quantile=quantile, max_ms=max_ms, min_samples=min_samples, server=server)
    judgement.evidence["served_by_query"] = ingress_crossing_query(cluster, backend, since)
    return judgement
