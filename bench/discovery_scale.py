"""Discovery at scale: DISCOVERY's Kubernetes listing over 1,000 services per cluster.

On a bare lab (the listing needs no mesh) ``SIZES`` services are created through
the API in one namespace of every cluster (headless, with a selector: the
listing is the same for a ClusterIP Service, and the lab then opens no
listener per Service). Three ways of reading what DISCOVERY reads from
Kubernetes are then timed and their API calls counted on the client side (a
counting wrapper around the kubernetes client's ``call_api``):

- DISCOVERY: the check's own functions, as ``observe()`` calls them — the
  namespace's Services and Endpoints in each cluster and, for the expected
  remote endpoints, the Endpoints of every other cluster, each listed
  ``discovery.LIST_PAGE`` at a time;
- a naive per-service walk: each Service and its Endpoints read one by one;
- a paged listing: Services and Endpoints listed with ``limit``/``continue``.

Not counted: the two Consul reads per cluster (the catalog sync node's services
and checks; the bare lab has no Consul) and the one ``/clusters`` read per
cluster from the sidecar.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from bench.figure import Figure, run_benchmark
from bench.labs import bench_lab
from meshproof.checks import discovery
from meshproof.clients.kube import ClusterApi
from meshproof.connections import open_connections
from meshproof.target import load_target
from meshproof.timeouts import DEFAULT_TIMEOUTS
from meshproof.waiting import eventually

__all__ = ["GOAL_S", "Reading", "counted_calls", "main", "measure"]

NAME = "discovery_scale"
GOAL_S = 5.0
SIZES = (100, 1000)
"""Services per cluster; the figure is for the last, the first shows how calls grow."""
NAMESPACE = "bench-discovery"
PAGE = 500
CREATE_WORKERS = 4


@dataclass(frozen=True, slots=True)
class Reading:
    """One way of reading every cluster's services and endpoints."""

    way: str
    services: int
    seconds: float
    calls: int

    def text(self) -> str:
        return f"{self.way} {self.seconds:.2f} s, {self.calls} calls"


@contextmanager
def counted_calls(apis: dict[str, ClusterApi]) -> Iterator[list[int]]:
    """Count the API calls made through ``apis`` inside the block (``counter[0]``)."""
    counter = [0]
    originals = {name: api.api.call_api for name, api in apis.items()}

    def counting(original: Callable[..., Any]) -> Callable[..., Any]:
        def call_api(*args: Any, **kwargs: Any) -> Any:
            counter[0] += 1
            return original(*args, **kwargs)
        return call_api

    for name, api in apis.items():
        api.api.call_api = counting(originals[name])  # type: ignore[method-assign]
    try:
        yield counter
    finally:
        for name, api in apis.items():
            api.api.call_api = originals[name]  # type: ignore[method-assign]


def discovery_listing(apis: dict[str, ClusterApi]) -> int:
    """What ``discovery.observe`` reads from Kubernetes in every cluster; the services seen."""
    seen = 0
    for cluster, api in apis.items():
        services = discovery._services(api, [NAMESPACE])
        discovery.all_kubernetes_endpoints(api, [NAMESPACE])
        for other, other_api in apis.items():
            if other != cluster:
                discovery._serving_elsewhere(other_api, [NAMESPACE])
        seen += len(services)
    return seen


def naive_walk(apis: dict[str, ClusterApi], names: list[str]) -> int:
    """Each Service and its Endpoints read one by one."""
    for api in apis.values():
        for name in names:
            api.get(f"/api/v1/namespaces/{NAMESPACE}/services/{name}")
            api.get(f"/api/v1/namespaces/{NAMESPACE}/endpoints/{name}")
    return len(names) * len(apis)


def paged_listing(apis: dict[str, ClusterApi]) -> int:
    """Services and Endpoints listed ``PAGE`` at a time."""
    seen = 0
    for api in apis.values():
        for resource in ("services", "endpoints"):
            token = ""
            while True:
                query = {"limit": str(PAGE), **({"continue": token} if token else {})}
                page = api.get(f"/api/v1/namespaces/{NAMESPACE}/{resource}", **query)
                if resource == "services":
                    seen += len(page.get("items") or [])
                token = str((page.get("metadata") or {}).get("continue") or "")
                if not token:
                    break
    return seen


def _service(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
            "spec": {"clusterIP": "None", "selector": {"app": name},
                     "ports": [{"name": "http", "port": 8080, "targetPort": 8080}]}}


def _grow(apis: dict[str, ClusterApi], have: int, want: int) -> list[str]:
    names = [f"svc-{i:04d}" for i in range(want)]
    with ThreadPoolExecutor(max_workers=CREATE_WORKERS) as pool:
        list(pool.map(lambda job: job[0].create(f"/api/v1/namespaces/{NAMESPACE}/services",
                                                _service(job[1])),
                      [(api, name) for api in apis.values() for name in names[have:]]))

    def all_endpoints() -> None:
        for cluster, api in apis.items():
            items = api.get(f"/api/v1/namespaces/{NAMESPACE}/endpoints").get("items") or []
            assert len(items) >= want, f"{cluster}: {len(items)} of {want} Endpoints"

    eventually(all_endpoints, timeout=DEFAULT_TIMEOUTS.rollout,
               interval=DEFAULT_TIMEOUTS.poll_interval, what="Endpoints for every Service")
    return names


def _read(way: str, apis: dict[str, ClusterApi], reader: Callable[[], int]) -> Reading:
    with counted_calls(apis) as counter:
        began = time.monotonic()
        services = reader()
        seconds = time.monotonic() - began
    reading = Reading(way, services, seconds, counter[0])
    print(f"{services} services: {reading.text()}", flush=True)
    return reading


def measure() -> Figure:
    with bench_lab(bare=True) as lab:
        apis = open_connections(load_target(lab.paths.target)).apis
        for api in apis.values():
            api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": NAMESPACE}})
        results: dict[int, dict[str, Reading]] = {}
        have = 0
        for size in SIZES:
            began = time.monotonic()
            names = _grow(apis, have, size)
            have = size
            print(f"{size} services per cluster created in {time.monotonic() - began:.1f} s",
                  flush=True)
            results[size] = {r.way: r for r in (
                _read("DISCOVERY", apis, lambda: discovery_listing(apis)),
                _read("naive walk", apis, partial(naive_walk, apis, names)),
                _read("paged listing", apis, lambda: paged_listing(apis)))}
    small, large = (results[s] for s in SIZES)
    ours, growth = large["DISCOVERY"], large["DISCOVERY"].calls / small["DISCOVERY"].calls
    per_pages = ours.calls <= large["paged listing"].calls * 2
    text = (f"{len(apis)} clusters x {SIZES[-1]} services: "
            + ", ".join(r.text() for r in large.values())
            + f"; DISCOVERY's calls grew x{growth:.1f} from {SIZES[0]} services")
    goal_met = ours.seconds <= GOAL_S and per_pages
    return Figure(NAME, text, f"<= {GOAL_S:g} s and calls growing with pages, not services",
                  goal_met)


def main() -> int:
    return run_benchmark(NAME, measure)


if __name__ == "__main__":
    sys.exit(main())
