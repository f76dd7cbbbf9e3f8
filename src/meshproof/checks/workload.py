"""Traffic the nightly checks measure, made by the in-mesh probe agents.

Each cluster's injected probe calls the cross-cluster sample service (its
endpoints are in both clusters, so about half of the requests cross the
east-west gateways) and the STRICT namespaces' services, several calls at a
time; the requests are real, over mutual TLS, and Istio records them.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from meshproof.clients.kube import ClusterApi
from meshproof.clients.prometheus import PromQL
from meshproof.probe.fleet import Kind, ProbeFleet

__all__ = ["TrafficWindow", "drive", "burst", "assert_recorded", "cross_cluster_volume",
           "service_urls"]


@dataclass(slots=True)
class TrafficWindow:
    start: float
    end: float = 0.0
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per cluster, every attempt the probe reported."""


CHUNK = 50
"""Requests per probe call: short calls keep each API server proxy request brief."""


def burst(fleet: ProbeFleet, cluster: str, kind: Kind, spec: dict[str, Any], *,
          total: int, parallel: int, rate: float | None = None) -> list[dict[str, Any]]:
    """``total`` requests, in calls of at most ``CHUNK``, ``parallel`` calls at a time.

    With ``rate`` (requests a second) the calls are paced: call *k* starts no sooner than
    its share of the requests before it allows, so the traffic is spread evenly over
    ``total / rate`` seconds instead of arriving as fast as the mesh answers.
    """
    sizes = [CHUNK] * (total // CHUNK) + ([total % CHUNK] if total % CHUNK else [])
    starts = [sum(sizes[:k]) / rate if rate else 0.0 for k in range(len(sizes))]
    began = time.monotonic()

    def call(k: int) -> list[dict[str, Any]]:
        wait = began + starts[k] - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        return list(fleet.request(cluster, kind, {**spec, "count": sizes[k]})["results"])

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return [r for part in pool.map(call, range(len(sizes))) for r in part]


def drive(fleet: ProbeFleet, clusters: list[str], plan: dict[str, int], *,
          parallel: int, seconds: float | None = None) -> TrafficWindow:
    """From every cluster's injected probe, ``plan[url]`` requests to each URL; with
    ``seconds``, each cluster's requests are spread evenly over about that long."""
    window = TrafficWindow(start=time.time())
    rate = sum(plan.values()) / seconds if seconds else None

    def one_cluster(cluster: str) -> list[dict[str, Any]]:
        return [r for url, total in plan.items() for r in burst(
            fleet, cluster, "mesh", {"url": url, "timeout": 10}, total=total,
            parallel=parallel, rate=rate)]

    with ThreadPoolExecutor(max_workers=max(1, len(clusters))) as pool:
        futures = {c: pool.submit(one_cluster, c) for c in clusters}
        window.results = {c: f.result() for c, f in futures.items()}
    window.end = time.time()
    return window


def cross_cluster_volume(min_samples: int, clusters: int, *, margin: float = 1.2) -> int:
    """Requests each cluster's probe sends to a service with endpoints in every cluster so
    that each ordered pair of clusters sees ``min_samples`` of them: without locality
    preference a share of ``(clusters - 1) / clusters`` crosses, and ``margin`` covers
    the round robin's unevenness."""
    crossing = (clusters - 1) / clusters if clusters > 1 else 1.0
    return math.ceil(min_samples / crossing * margin)


def service_urls(api: ClusterApi, namespaces: list[str]) -> list[str]:
    """``http://<service>.<namespace>:<port>/`` for every TCP port of ``namespaces``' services:
    in-mesh names, resolved by the mesh (its DNS, or the lab's sidecar)."""
    urls = []
    for namespace in namespaces:
        for svc in api.get(f"/api/v1/namespaces/{namespace}/services").get("items") or []:
            for port in (svc.get("spec") or {}).get("ports") or []:
                if port.get("protocol", "TCP") == "TCP":
                    urls.append(f"http://{svc['metadata']['name']}.{namespace}:{port['port']}/")
    return urls


def assert_recorded(prom: PromQL, *, namespace: str, answered: int) -> None:
    """Prometheus has scraped the source side of every answered probe request."""
    query = (f'sum(istio_requests_total{{reporter="source",'
             f'source_workload_namespace="{namespace}"}})')
    seen = prom.scalar(query) or 0.0
    assert seen >= answered, (f"{prom.cluster}: Prometheus shows {seen:g} of the {answered} "
                              f"requests the probes made")
