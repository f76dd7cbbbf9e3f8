"""Ingress throughput: requests per second from the ingress gateway to the cross-cluster
sample service while the latency stays within budget.

Locust (``loadtests/ingress.py``, through ``meshproof.load``) calls
``https://hello.example.com/hello`` on the first cluster's ingress gateway
(certificate verified, keep-alive, no wait between requests) at each of
``USERS`` closed-loop users for ``RUN_S`` seconds. The gateway routes to
helloworld, whose endpoints are split between the clusters, so part of the
traffic crosses to the other cluster through the east-west gateway (the share
is measured). The budget is XC-LATENCY's (its quantile under its ``max_ms``,
from the catalog), over Locust's exact per-request latencies, with no failed
request. The figure is the highest rate of a level within the budget; the
levels above it are shown beside.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.figure import CannotRun, Figure, run_benchmark
from bench.labs import bench_lab
from bench.mesh_route import BENCH_HOST, HELLO_PATH, bench_route, local_versions
from meshproof.catalog import load_catalog
from meshproof.connections import open_connections
from meshproof.load.plan import LoadPlan, bundled_locustfile
from meshproof.load.results import LoadResult
from meshproof.load.runner import run_load
from meshproof.target import load_target
from meshproof.timeouts import DEFAULT_TIMEOUTS

__all__ = ["GOAL_RPS", "main", "measure"]

NAME = "ingress_throughput"
GOAL_RPS = 300.0
USERS = (4, 12, 32)
RUN_S = 15.0
SHARE_SAMPLE = 100


def _level(users: int, address: str, ca_file: Path, output: Path) -> LoadResult:
    return run_load(LoadPlan(
        locustfile=bundled_locustfile("ingress"), host=f"https://{BENCH_HOST}", users=users,
        run_time_s=RUN_S, spawn_rate=float(users), user_classes=("IngressUser",),
        options={"connect-to": address, "ca-file": str(ca_file), "ingress-path": HELLO_PATH},
        output_dir=output))


def measure() -> Figure:
    xc = load_catalog().get("XC-LATENCY").thresholds
    quantile, budget_ms = float(xc["quantile"]), float(xc["max_ms"])
    label = f"p{quantile * 100:g} <= {budget_ms:g} ms"
    with bench_lab() as lab, tempfile.TemporaryDirectory(prefix="meshproof-bench-") as tmp:
        apis = open_connections(load_target(lab.paths.target)).apis
        with bench_route(apis, Path(tmp)) as endpoint:
            local = local_versions(next(iter(apis.values())))
            seen = endpoint.versions(SHARE_SAMPLE, DEFAULT_TIMEOUTS.api_request)
            crossed = 100 * sum(n for v, n in seen.items() if v not in local) / max(1, sum(
                seen.values()))
            print(f"versions answering: {dict(seen)} (local: {sorted(local)})", flush=True)
            levels = []
            for users in USERS:
                result = _level(users, endpoint.address, endpoint.ca_file, Path(tmp) / str(users))
                p95 = result.exact_percentile(quantile)
                within = result.failures == 0 and result.requests > 0 and p95 <= budget_ms
                levels.append((users, result.rps, p95, result.failures, within))
                print(f"{users} users: {result.rps:.0f} req/s, p{quantile * 100:g} {p95:.1f} ms, "
                      f"{result.failures} of {result.requests} failed", flush=True)
    if not any(rps for _, rps, _, _, _ in levels):
        raise CannotRun("no level completed a request through the ingress gateway")
    best = max((rps for _, rps, _, _, within in levels if within), default=0.0)
    shown = ", ".join(f"{u} users {rps:.0f} req/s p{quantile * 100:g} {p95:.0f} ms"
                      + (f" {f} failed" if f else "") for u, rps, p95, f, _ in levels)
    text = (f"{best:.0f} req/s within {label} through the ingress gateway to helloworld "
            f"({crossed:.0f}% of replies from the other cluster); levels: {shown}")
    return Figure(NAME, text, f">= {GOAL_RPS:g} req/s within {label}", best >= GOAL_RPS)


def main() -> int:
    return run_benchmark(NAME, measure)


if __name__ == "__main__":
    sys.exit(main())
