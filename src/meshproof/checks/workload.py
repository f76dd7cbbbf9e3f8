"""Traffic the nightly checks measure, made by the in-mesh probe agents.

Each cluster's injected probe calls the cross-cluster sample service (its
endpoints are in both clusters, so about half of the requests cross the
east-west gateways) and the STRICT namespaces' services, several calls at a
time; the requests are real, over mutual TLS, and Istio records them.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from meshproof.clients.prometheus import PromQL
from meshproof.probe.fleet import Kind, ProbeFleet

__all__ = ["TrafficWindow", "drive", "burst", "assert_recorded"]


@dataclass(slots=True)
class TrafficWindow:
    start: float
    end: float = 0.0
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per cluster, every attempt the probe reported."""


def burst(fleet: ProbeFleet, cluster: str, kind: Kind, spec: dict[str, Any], *,
          total: int, parallel: int) -> list[dict[str, Any]]:
    """``total`` requests as ``parallel`` concurrent probe calls."""
    share = [total // parallel + (1 if i < total % parallel else 0) for i in range(parallel)]
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        parts = pool.map(lambda n: fleet.request(cluster, kind, {**spec, "count": n})
                         ["results"], [n for n in share if n])
        return [r for part in parts for r in part]


def drive(fleet: ProbeFleet, clusters: list[str], urls: list[str], *, per_cluster: int,
          parallel: int) -> TrafficWindow:
    """Send ``per_cluster`` requests to each URL from every cluster's injected probe."""
    window = TrafficWindow(start=time.time())
    with ThreadPoolExecutor(max_workers=max(1, len(clusters))) as pool:
        futures = {c: pool.submit(lambda c: [r for url in urls for r in burst(
            fleet, c, "mesh", {"url": url, "timeout": 10}, total=per_cluster,
            parallel=parallel)], c) for c in clusters}
        window.results = {c: f.result() for c, f in futures.items()}
    window.end = time.time()
    return window


def assert_recorded(prom: PromQL, *, namespace: str, answered: int) -> None:
    """Prometheus has scraped the source side of every answered probe request."""
    query = (f'sum(istio_requests_total{{reporter="source",'
             f'source_workload_namespace="{namespace}"}})')
    seen = prom.scalar(query) or 0.0
    assert seen >= answered, (f"{prom.cluster}: Prometheus shows {seen:g} of the {answered} "
                              f"requests the probes made")
