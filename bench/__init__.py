"""meshproof's benchmarks: one module per performance goal of the project.

Each module runs on its own (``python -m bench.<name>``) and as part of the set
(``python -m bench [NAME...]``). A benchmark prints what it measures as it
goes and its figure last, as one line ``<name>: <figure>; goal <goal>: <met|missed>``;
it exits 0 when it measured (whether or not the goal was met) and 2 when it
could not run. Figures are ratios or counts against a baseline taken in the
same run, never timed assertions. docs/benchmarks.md holds the latest numbers.
"""

from __future__ import annotations

BENCHMARKS: tuple[str, ...] = (
    "latency_exactness",
    "lab_ready",
    "lab_memory",
    "ingress_throughput",
    "proxy_hop",
    "discovery_scale",
    "nightly_overhead",
    "time_to_detect",
    "drill_safety",
)
"""The benchmarks ``python -m bench`` runs, in this order (cheapest first)."""

__all__ = ["BENCHMARKS"]
