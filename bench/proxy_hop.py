"""Proxy hop: p50 latency a sidecar adds to a call, against a direct call to the app.

The same helloworld pod (first cluster) is called two ways, in alternating
rounds so that load from elsewhere hits both alike: directly on the app's own
listener (in the lab the app listens on its port plus the kubelet's offset,
since there is no iptables to redirect it) and through the pod's sidecar,
which owns the service port on the pod IP (inbound listener, then the app:
one proxy hop). The figure is the difference of the exact p50s with a new
connection per call (as curl makes); the p95s are shown beside, and the p50s
over one keep-alive connection per round.
"""

from __future__ import annotations

import http.client
import statistics
import sys
import time

from bench.figure import CannotRun, Figure, run_benchmark
from bench.labs import bench_lab
from bench.mesh_route import HELLO_PATH, SAMPLE_NAMESPACE, SAMPLE_PORT, SAMPLE_SERVICE
from meshproof.clients.kube import ClusterApi
from meshproof.connections import open_connections
from meshproof.lab.kube.kubelet.launch import APP_PORT_OFFSET
from meshproof.load.results import exact_percentile
from meshproof.target import load_target
from meshproof.timeouts import DEFAULT_TIMEOUTS

__all__ = ["GOAL_MS", "main", "measure", "timed_calls"]

NAME = "proxy_hop"
GOAL_MS = 2.0
ROUNDS = 10
FRESH_PER_ROUND = 30
REUSED_PER_ROUND = 30
WARMUP = 20


def timed_calls(address: str, port: int, count: int, timeout: float, *,
                keep_alive: bool = True) -> list[float]:
    """Milliseconds of ``count`` sequential GETs (all must be 200): on one keep-alive
    connection, or each on a new connection (its connect included)."""
    conn = http.client.HTTPConnection(address, port, timeout=timeout)
    out = []
    try:
        for _ in range(count):
            began = time.perf_counter()
            if not keep_alive:
                conn = http.client.HTTPConnection(address, port, timeout=timeout)
            conn.request("GET", HELLO_PATH)
            response = conn.getresponse()
            response.read()
            if not keep_alive:
                conn.close()
            out.append((time.perf_counter() - began) * 1000)
            if response.status != 200:
                raise CannotRun(f"GET http://{address}:{port}{HELLO_PATH} answered "
                                f"{response.status}")
    finally:
        conn.close()
    return out


def _pod_ip(api: ClusterApi) -> str:
    pods = api.get(f"/api/v1/namespaces/{SAMPLE_NAMESPACE}/pods",
                   labelSelector=f"app={SAMPLE_SERVICE}").get("items") or []
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") == "Running" and status.get("podIP"):
            return str(status["podIP"])
    raise CannotRun(f"{api.cluster}: no running {SAMPLE_SERVICE} pod in {SAMPLE_NAMESPACE}")


def measure() -> Figure:
    with bench_lab() as lab:
        api = next(iter(open_connections(load_target(lab.paths.target)).apis.values()))
        ip = _pod_ip(api)
        paths = {"direct": SAMPLE_PORT + APP_PORT_OFFSET, "sidecar": SAMPLE_PORT}
        fresh: dict[str, list[float]] = {way: [] for way in paths}
        reused: dict[str, list[float]] = {way: [] for way in paths}
        for port in paths.values():
            timed_calls(ip, port, WARMUP, DEFAULT_TIMEOUTS.api_request)
        for _ in range(ROUNDS):
            for way, port in paths.items():
                fresh[way] += timed_calls(ip, port, FRESH_PER_ROUND,
                                          DEFAULT_TIMEOUTS.api_request, keep_alive=False)
                reused[way] += timed_calls(ip, port, REUSED_PER_ROUND,
                                           DEFAULT_TIMEOUTS.api_request)
    p50 = {way: statistics.median(values) for way, values in fresh.items()}
    p95 = {way: exact_percentile(sorted(values), 0.95) for way, values in fresh.items()}
    reused_p50 = {way: statistics.median(values) for way, values in reused.items()}
    for way in paths:
        print(f"{way}: new connections p50 {p50[way]:.2f} ms, p95 {p95[way]:.2f} ms; "
              f"keep-alive p50 {reused_p50[way]:.2f} ms", flush=True)
    added = p50["sidecar"] - p50["direct"]
    text = (f"a sidecar hop adds {added:.2f} ms at p50 (a new connection per call: direct "
            f"{p50['direct']:.2f} ms, through the sidecar {p50['sidecar']:.2f} ms; p95 "
            f"{p95['direct']:.2f} vs {p95['sidecar']:.2f} ms; {ROUNDS * FRESH_PER_ROUND} calls "
            f"each; keep-alive p50 direct {reused_p50['direct']:.2f} ms, through the sidecar "
            f"{reused_p50['sidecar']:.2f} ms)")
    return Figure(NAME, text, f"<= {GOAL_MS:g} ms per hop at p50", added <= GOAL_MS)


def main() -> int:
    return run_benchmark(NAME, measure)


if __name__ == "__main__":
    sys.exit(main())
